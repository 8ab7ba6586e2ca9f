"""The demo end to end: ``printmesh up`` with examples/demo.yaml (the virtual camera), one real print.

Real mosquitto (started by ``up`` on a free port), real OctoPrint with its virtual printer and
the bridge, every agent. The captures must show the box growing: the rendered part's pixel
area, summed over the grid positions of a layer, grows from layer to layer (a single position
may dip slightly, because the camera rises with the head). The run ends with a final job page
that lists every captured layer, and ``up`` prints its path last. With PRINTMESH_PAGE_SHOTS
set, the page is also checked in chromium and a full-page screenshot saved there.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
from virtual_camera_support import part_area

from printmesh_core.config import MqttConfig
from printmesh_core.models.coordinator import JobSummary, LayerCapture
from printmesh_core.mqtt import MqttRuntime
from printmesh_devkit.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
LAYERS = [5, 10, 15, 20, 25, 30]
GRID = 9  # examples/demo.yaml: a 3x3 grid, one camera


def _demo_command(config: str, port: int) -> list[str]:
    from octoprint_harness import octoprint_venv

    return [sys.executable, "-m", "printmesh_core.cli", "up", "--config", str(ROOT / "examples" / config),
            "--broker-port", str(port), "--octoprint", str(octoprint_venv()),
            "--print", str(ROOT / "examples" / "sample-box.gcode")]  # fmt: skip


ENV = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}


def _run_demo(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # from tmp_path: OctoPrint's basedir, the logs and captures/ land there, not in the tree
    cmd = _demo_command("demo.yaml", free_port())
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=420, cwd=tmp_path)


def test_demo_captures_show_the_box_growing_and_end_with_a_final_job_page(tmp_path):
    r = _run_demo(tmp_path)
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-3000:]
    assert f"done: {len(LAYERS)} layers captured, {len(LAYERS) * GRID} images, 0 failures" in out, out[-2000:]
    # the print watch's verdict on every captured layer, each compared with the capture before it
    watched = re.findall(r"watch, layer (\d+): ok \((?:compared with layer (\d+)|the first capture)", out)
    expected = list(zip(LAYERS, [None, *LAYERS[:-1]], strict=True))
    assert [(int(a), int(b) if b else None) for a, b in watched] == expected, out
    assert f"# print watch: {len(LAYERS)} layers judged, no problem" in out
    # ...and with the G-code's silhouette (the bridge's outlines, the virtual head camera's geometry)
    checked = re.findall(r"watch, layer (\d+): ok \(compared with layer \d+ and with the G-code in (\d+) images", out)
    assert [(int(a), int(n)) for a, n in checked] == [(layer, GRID) for layer in LAYERS[1:]], out

    folder = next((tmp_path / "captures" / "demo").iterdir())
    summary = JobSummary.model_validate_json((folder / "job_summary.json").read_bytes())
    assert summary.layers_captured == LAYERS
    areas: dict[int, list[int]] = {}
    for file in sorted(folder.glob("layer_*_metadata_*.json")):
        capture = LayerCapture.model_validate_json(file.read_bytes())
        assert capture.complete and len(capture.images) == GRID
        images = sorted(capture.images, key=lambda i: i.index)
        areas[capture.layer] = [part_area(cv2.imread(str(tmp_path / "captures" / i.path))) for i in images]
    print("part area per layer (sum over the grid; per position):")
    for layer, per_position in sorted(areas.items()):
        print(f"  layer {layer:2d}: {sum(per_position):8d}  {per_position}")
    assert sorted(areas) == LAYERS
    for layer, per_position in areas.items():
        assert min(per_position) > 0, f"layer {layer}: a capture shows an empty bed: {per_position}"
    sums = [sum(areas[layer]) for layer in LAYERS]
    assert all(b > a for a, b in itertools.pairwise(sums)), f"the part does not grow: {sums}"
    # the head camera looks down on the box: its top face is the same from layer 5 on, and its walls
    # grow (measured: +13 % from layer 5 to 30, each step at least +0.9 %)
    assert sums[-1] > 1.05 * sums[0], f"the part barely grows from layer 5 to 30: {sums}"

    index = folder / "index.html"
    html = index.read_text()
    assert 'name="printmesh-page" content="final"' in html, "up stopped the agents before the page was finished"
    assert sorted(int(n) for n in re.findall(r'data-layer="(\d+)"', html)) == LAYERS
    assert len(list(folder.rglob("*.webm"))) >= GRID, "one timelapse per grid position"
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[-2].endswith(f"# job page: {index.resolve()}"), lines[-4:]
    assert lines[-1].endswith(f"# open it in a browser: {index.resolve().as_uri()}"), lines[-4:]
    umask = os.umask(0o022)
    os.umask(umask)  # the coordinator inherited it through up
    for image in folder.glob("*.jpg"):
        assert image.stat().st_mode & 0o777 == 0o666 & ~umask, f"{image}: not the mode an ordinary file gets"

    if os.environ.get("PRINTMESH_PAGE_SHOTS"):
        from job_page_browser import check_job_page, chromium, shot_path

        with chromium() as browser:
            seen = check_job_page(browser, folder, shot_path("demo_job_page"))
        assert seen["images"] >= len(LAYERS) * GRID and seen["videos"] >= GRID


def test_the_spaghetti_demo_pauses_after_layer_15_and_a_resume_over_mqtt_finishes_the_print(tmp_path):
    """examples/demo-spaghetti.yaml: strands from layer 12, the watch pauses; the user resumes as up says."""
    port = free_port()
    proc = subprocess.Popen(_demo_command("demo-spaghetti.yaml", port), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV, cwd=tmp_path)  # fmt: skip
    lines: list[str] = []
    resumed = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when up exits
            lines.append(line.rstrip("\n"))
            if "# PrintPaused" in line and not resumed:
                hint = re.search(r"mosquitto_pub -h (\S+) -p (\d+) -t '([^']+)' -m '([^']+)'", line)
                assert hint is not None and int(hint.group(2)) == port, line
                runtime = MqttRuntime(MqttConfig(host=hint.group(1), port=port), root="printmesh", client_id="user")
                runtime.start()
                assert runtime.wait_connected(5)
                runtime.publish_absolute(hint.group(3), hint.group(4), qos=1)
                runtime.stop()
                resumed = True
        assert proc.wait(timeout=420) == 0, "\n".join(lines[-40:])
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "\n".join(lines)
    print(out)
    assert resumed, out
    flagged = re.findall(r"watch, layer (\d+): SPAGHETTI, confidence [\d.]+, PROBLEM \(action: (\w+)\)", out)
    assert flagged and flagged[0] == ("15", "pause"), out
    assert all(action == "notify" for _, action in flagged[1:]), "a job is paused once"
    assert re.findall(r"watch, layer (\d+): ok", out) == ["5", "10"], out
    pause, resume, done = (out.index(s) for s in ("# PrintPaused", "# PrintResumed", "# PrintDone"))
    assert out.index("watch, layer 15: SPAGHETTI") < pause < resume < done
    assert f"done: {len(LAYERS)} layers captured, {len(LAYERS) * GRID} images, 0 failures" in out, out[-2000:]
    assert re.search(r"# print watch: 6 layers judged, \d+ problems? \(layer 15: spaghetti, pause", out), out
