"""printmesh coordinator --calibrate, run as a process on a job folder whose camera geometry was set wrong.

The images are the virtual head camera's renders of the sample box (realism knobs up) from a 3x3 grid
at layers 10, 20 and 30, at 1280x720: what the coordinator stores. The metadata records a geometry
5 mm and 5-6 degrees off in every parameter, as a hand measurement might be. The outlines are the
bridge's own, from the same G-code. The fitted geometry must put the part back inside the silhouette.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from job_folders import make_job
from virtual_camera_support import SAMPLE, virtual

from octoprint_printmesh.layers.outline import scan_outlines
from octoprint_printmesh.layers.scanner import scan_file
from printmesh_camera.sources.render import VirtualRenderer
from printmesh_camera.sources.toolpath import parse_file
from printmesh_coordinator.watch.frames import decode, prepare
from printmesh_coordinator.watch.silhouette import clear_rings, outside, projected
from printmesh_coordinator.watch_rules import sidecar_path
from printmesh_coordinator.watch_scene import CameraModel, Scene, outlines_of
from printmesh_core.models.camera import CameraGeometry
from printmesh_core.models.coordinator import XY, LayerCapture
from printmesh_core.models.layers import LayerOutlines
from printmesh_core.models.watch import WatchVerdict

GRID = [(100.0 + (c - 1) * 30, 100.0 + (r - 1) * 30) for r in range(3) for c in range(3)]
UP = {"noise": 9.0, "drift": 0.25, "drift_period": 90.0, "jitter": 3.0, "jpeg_quality": 60}
WRONG = CameraGeometry(offset=[0, -50, 50], pitch=40, fov=84)  # the truth: [0, -55, 45], 45, 90


def rendered_job(root: Path) -> tuple[Path, Path]:
    """(the job folder, the outlines file)."""
    folder = make_job(root, [10, 20, 30], points=9, size=(64, 36), gcode_file="sample-box.gcode")
    renderer = VirtualRenderer(virtual(mount="head", seed=5, realism=UP), parse_file(SAMPLE), (1280, 720))
    frame = 0
    for file in sorted(folder.glob("layer_*_metadata_*.json")):
        md = LayerCapture.model_validate_json(file.read_bytes())
        z = renderer.height_of(md.layer - 1) + 5
        images = []
        for image in md.images:
            frame += 1
            x, y = GRID[image.index]
            ok, data = cv2.imencode(".jpg", renderer.frame(md.layer - 1, (x, y, z), frame, frame * 3.0))
            assert ok
            (folder / Path(image.path).name).write_bytes(data.tobytes())
            images.append(image.model_copy(update={"position": XY(x=x, y=y), "z": z, "geometry": WRONG,
                                                   "sha256": hashlib.sha256(data.tobytes()).hexdigest()}))  # fmt: skip
        file.write_text(md.model_copy(update={"images": images}).model_dump_json())
    with open(SAMPLE, "rb") as f:
        outlines = scan_outlines(f, scan_file(SAMPLE).table)
    path = root / "outlines.json"
    path.write_text(LayerOutlines(ts=0, path="sample-box.gcode", file_size=SAMPLE.stat().st_size,
                                  outlines=outlines).model_dump_json())  # fmt: skip
    return folder, path


def part_outside(folder: Path, outlines: Path, camera: CameraModel) -> list[int]:
    """Part pixels outside the silhouette with ``camera``, per image, as the watch counts them."""
    layers = LayerOutlines.model_validate_json(outlines.read_bytes()).outlines
    converted = outlines_of(layers)
    out = []
    for file in sorted(folder.glob("layer_*_metadata_*.json")):
        md = LayerCapture.model_validate_json(file.read_bytes())
        for image in md.images:
            small, full = decode((folder / Path(image.path).name).read_bytes())
            now = prepare(small, full)
            scene = Scene(converted[: md.layer - 1], {("c", 0): (image.position.x, image.position.y, image.z)},
                          {"c": camera})  # fmt: skip
            drawn = projected(scene, ("c", 0), full, (now.part.shape[1], now.part.shape[0]))
            assert drawn is not None
            out.append(int(np.count_nonzero(outside(now.part, cv2.bitwise_or(*drawn), clear_rings(*drawn)))))
    return out


def test_calibrate_fits_a_wrong_geometry_back_onto_the_part(tmp_path):
    folder, outlines = rendered_job(tmp_path)
    wrong = CameraModel((0, -50, 50), 40, 84)
    assert max(part_outside(folder, outlines, wrong)) > 300  # what a wrong geometry does to the silhouette
    cmd = [sys.executable, "-m", "printmesh_core.cli", "coordinator", "--calibrate", str(folder),
           "--outlines", str(outlines)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    agreements = [float(a) for a in re.findall(r"agreement (\d\.\d+)", done.stdout)]
    assert len(agreements) == 2 and agreements[0] < 0.3 and agreements[1] > 0.8, done.stdout
    offset = [float(v) for v in re.search(r"offset: \[(.*)\]", done.stdout).group(1).split(",")]
    pitch = float(re.search(r"pitch: ([\d.]+)", done.stdout).group(1))
    fov = float(re.search(r"fov: ([\d.]+)", done.stdout).group(1))
    fitted = CameraModel((offset[0], offset[1], offset[2]), pitch, fov)
    assert max(part_outside(folder, outlines, fitted)) <= 3, part_outside(folder, outlines, fitted)
    assert abs(pitch - 45) <= 2 and abs(fov - 90) <= 4 and abs(offset[1] + 55) <= 4 and abs(offset[2] - 45) <= 3


def test_calibrate_says_what_it_needs(tmp_path):
    folder, outlines = rendered_job(tmp_path)
    base = [sys.executable, "-m", "printmesh_core.cli", "coordinator"]
    missing = subprocess.run([*base, "--calibrate", str(folder)], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--outlines" in missing.stderr
    (tmp_path / "bad.json").write_text("{}")
    bad = subprocess.run([*base, "--calibrate", str(folder), "--outlines", str(tmp_path / "bad.json")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "outlines" in bad.stderr and "Field required" in bad.stderr
    alone = subprocess.run([*base, "--outlines", str(outlines)], capture_output=True, text=True, timeout=60)
    assert alone.returncode == 2 and "only goes with --calibrate" in alone.stderr


def test_calibrate_leaves_out_the_layers_from_the_first_flagged_one(tmp_path):
    """A failed print does not match its G-code: the layers from the watch's first problem on are not fitted.
    The outlines file, as a newer bridge sent it, carries fields this version does not know: they are ignored."""
    folder, outlines = rendered_job(tmp_path)
    md = LayerCapture.model_validate_json(next(folder.glob("layer_0030_metadata_*.json")).read_bytes())
    verdict = WatchVerdict(printer=md.printer, job=md.job, layer=30, verdict="spaghetti", confidence=0.9, score=3,
                           problem=True, action="notify", elapsed_ms=10, metadata_path=md.metadata_path)  # fmt: skip
    (folder / Path(sidecar_path(md.metadata_path or "")).name).write_text(verdict.model_dump_json())
    newer = json.loads(outlines.read_text())  # a newer bridge's outlines: fields this coordinator does not know
    newer["units"], newer["outlines"][0]["infill"] = "mm", 0.2
    outlines.write_text(json.dumps(newer))
    cmd = [sys.executable, "-m", "printmesh_core.cli", "coordinator", "--calibrate", str(folder),
           "--outlines", str(outlines)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "camera bed: 18 images, layers before 30 (flagged)" in done.stdout, done.stdout
