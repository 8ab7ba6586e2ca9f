"""The virtual camera without a broker: config, file lookup, rendering, faults, the printer it follows."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest
from virtual_camera_support import SAMPLE, centroid, feeds_of, part_area, part_mask, virtual

from printmesh_camera.config import CameraSettings
from printmesh_camera.follow import PrinterFollower
from printmesh_camera.sources import SourceError, make_source
from printmesh_camera.sources.base import SizeHint
from printmesh_camera.sources.render import VirtualRenderer
from printmesh_camera.sources.toolpath import parse_file, parse_lines
from printmesh_camera.sources.virtual import job_file
from printmesh_core import contract
from printmesh_core.config import ConfigError, load_settings

SIZE = (640, 360)
QUIET = {"noise": 0, "jitter": 0, "drift": 0}


@pytest.fixture(scope="module")
def box():
    return parse_file(SAMPLE)


def renderer(box, size=SIZE, **extra):
    return VirtualRenderer(virtual(**extra), box, size)


# ----------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("{type: virtual, files: /tmp}", "source.virtual.printer: Field required"),
        ("{type: virtual, printer: 'a/b', files: /tmp}", "source.virtual.printer: invalid node id"),
        ("{type: virtual, printer: demo}", "set files (OctoPrint's uploads folder) or octoprint"),
        ("{type: virtual, printer: demo, files: /tmp, mount: hat}", "source.virtual.mount"),
        ("{type: virtual, printer: demo, files: /tmp, faults: [{kind: fire, layer: 3}]}",
         "source.virtual.faults.0.kind"),
        ("{type: virtual, printer: demo, files: /tmp, faults: [{kind: shift, layer: 0}]}",
         "source.virtual.faults.0.layer"),
        ("{type: virtual, printer: demo, files: /tmp, realism: {noise: -1}}", "source.virtual.realism.noise"),
        ("{type: virtual, printer: demo, files: /tmp, fixed: {position: [1, 2, 3], look_at: [1, 2, 3]}}",
         "source.virtual.fixed: position and look_at must differ"),
        ("{type: virtual, printer: demo, files: /tmp, head: {pitch: 95}}", "source.virtual.head.pitch"),
        ("{type: virtual, printer: demo, files: /tmp, octoprint: {url: 'ftp://x', api_key: k}}",
         "source.virtual.octoprint.url"),
        ("{type: virtual, printer: demo, files: /tmp, colour: [1, 2, 3]}", "source.virtual.colour: unknown key"),
    ],
)  # fmt: skip
def test_invalid_virtual_config_names_the_key(tmp_path, source, expect):
    path = tmp_path / "c.yaml"
    path.write_text(f"camera: {{cameras: [{{name: a, source: {source}}}]}}")
    with pytest.raises(ConfigError) as err:
        load_settings(CameraSettings, path)
    assert expect in str(err.value)


def test_valid_virtual_config_loads(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("camera: {cameras: [{name: a, source: {type: virtual, printer: demo, mount: head, "
                    "files: uploads, faults: [{kind: spaghetti, layer: 12, seed: 3}]}}]}")  # fmt: skip
    source = load_settings(CameraSettings, path).camera.cameras[0].source
    assert source.type == "virtual" and source.mount == "head" and source.faults[0].seed == 3


# ------------------------------------------------------------- file lookup
def test_job_file_never_escapes_its_folder(tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "sub").mkdir(parents=True)
    (tmp_path / "secret.gcode").write_text("G1 X1 E1\n")
    (uploads / "link.gcode").symlink_to(tmp_path / "secret.gcode")
    assert job_file(uploads, "sub/part.gcode") == (uploads / "sub" / "part.gcode").resolve()
    for bad in ("../secret.gcode", "sub/../../secret.gcode", str(tmp_path / "secret.gcode"), "link.gcode", "", "."):
        with pytest.raises(SourceError, match="outside"):
            job_file(uploads, bad)


def test_source_refuses_a_job_file_outside_files_and_says_so(tmp_path):
    follower = PrinterFollower("demo")
    follower.feed(contract.PRINTER_JOB, json.dumps({"file_path": "../../etc/passwd", "file_origin": "local"}).encode())
    source = make_source(virtual(tmp_path), SizeHint(*SIZE), feeds=feeds_of(follower))
    source.open()
    with pytest.raises(SourceError, match="outside"):
        source.read(time.monotonic())


def test_parser_counts_layers_and_keeps_only_extrusions(box):
    assert box.count == 30 and box.layers[0].z == pytest.approx(0.2) and box.layers[-1].z == pytest.approx(6.0)
    relative = parse_lines(["G91", "G1 X10 E1", "G1 Z0.3", "G1 X-10 E1", "G1 Y5", "M83", "G1 Y5 E-1"])
    assert relative.count == 1 and len(relative.layers[0].segments) == 1  # travel, retraction: nothing drawn


# --------------------------------------------------------------- rendering
def test_same_seed_same_frame_and_another_seed_differs(box):
    a = renderer(box, seed=4).frame(15, None, 7, 3.0)
    b = renderer(box, seed=4).frame(15, None, 7, 3.0)
    c = renderer(box, seed=5).frame(15, None, 7, 3.0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("mount", ["fixed", "head"])
def test_part_area_grows_with_the_layer(box, mount):
    r = renderer(box, (1280, 720), mount=mount)  # the demo's size
    areas = [part_area(r.frame(layer, None, layer)) for layer in (0, 1, 5, 10, 15, 20, 25, 30)]
    assert areas[0] == 0, "nothing printed, nothing drawn"
    assert all(b > a for a, b in itertools.pairwise(areas)), areas


def test_layer_by_layer_cache_gives_the_image_of_a_fresh_render(box):
    """Not bit for bit: a fresh render skips tops the next layer covers, which leaves slivers at edges."""
    followed = renderer(box, realism=QUIET)
    for layer in range(1, 16):
        followed.part(layer)
    cached, fresh = followed.part(15), renderer(box, realism=QUIET).part(15)
    assert abs(part_area(cached) - part_area(fresh)) < 0.01 * part_area(fresh)
    assert (np.abs(cached.astype(int) - fresh).max(axis=2) > 40).sum() < 0.08 * part_area(fresh)
    other = renderer(box, realism=QUIET).part(14)
    assert (np.abs(other.astype(int) - fresh).max(axis=2) > 40).sum() > 0.1 * part_area(fresh)


def test_head_mount_sees_the_part_from_each_grid_point(box):
    r = renderer(box, mount="head", realism=QUIET)
    left, right = r.part(15, (70.0, 100.0, 8.0)).copy(), r.part(15, (130.0, 100.0, 8.0)).copy()
    assert not np.array_equal(left, right)
    # the head moves right, the part moves left in the frame (the camera rides on the carriage)
    assert centroid(part_mask(left))[0] > centroid(part_mask(right))[0] + 100


def test_realism_changes_pixels_but_not_the_part(box):
    clean = renderer(box, (1280, 720), realism=QUIET).frame(15, None, 1)
    realism = {"noise": 6, "jitter": 1, "drift": 0.1, "jpeg_quality": 60}
    noisy = renderer(box, (1280, 720), realism=realism).frame(15, None, 1)
    assert not np.array_equal(clean, noisy)
    assert abs(part_area(noisy) - part_area(clean)) < 0.3 * part_area(clean)  # JPEG smears colour at edges


# ------------------------------------------------------------------ faults
def fault(kind: str, layer: int = 10, seed: int = 1) -> dict[str, object]:
    return {"faults": [{"kind": kind, "layer": layer, "seed": seed}], "realism": QUIET}


def test_blackout_gives_black_frames_from_its_layer(box):
    r = renderer(box, **fault("blackout"))
    assert r.frame(9).mean() > 20
    assert r.frame(10).mean() < 1 and r.frame(20).max() == 0


def test_shift_moves_the_layers_above_its_layer(box):
    plain, shifted = renderer(box, realism=QUIET), renderer(box, **fault("shift", 10, 2))
    assert np.array_equal(plain.part(10), shifted.part(10))
    a, b = part_mask(plain.part(25)), part_mask(shifted.part(25))
    top = slice(0, int(np.nonzero(a.any(axis=1))[0].min()) + 40)  # the upper band of the part in the frame
    (ax, ay), (bx, by) = centroid(a[top]), centroid(b[top])
    assert np.hypot(ax - bx, ay - by) > 5


def test_detach_displaces_the_whole_part(box):
    plain, detached = renderer(box, realism=QUIET), renderer(box, **fault("detach", 10, 3))
    assert np.array_equal(plain.part(9), detached.part(9))
    (ax, ay), (bx, by) = centroid(part_mask(plain.part(12))), centroid(part_mask(detached.part(12)))
    assert np.hypot(ax - bx, ay - by) > 20


def test_spaghetti_strands_grow_from_their_layer(box):
    plain, failed = renderer(box, realism=QUIET), renderer(box, **fault("spaghetti", 10, 4))
    assert np.array_equal(plain.part(9), failed.part(9))
    outside = ~part_mask(plain.part(10))  # strands show where the healthy part is not
    grown = [int((part_mask(failed.part(layer)) & outside).sum()) for layer in (10, 15, 25)]
    assert grown[0] > 50 and grown[1] > grown[0] and grown[2] > grown[1], grown


# ------------------------------------------------------ following a printer
def test_follower_layers_head_and_tolerance():
    f = PrinterFollower("demo")
    f.feed(contract.PRINTER_JOB, json.dumps({"file_path": "box.gcode", "file_origin": "local", "started_at": 1.0,
                              "future_field": 1}).encode())  # fmt: skip
    f.feed(contract.PRINTER_LAYER_PROGRESS, json.dumps({"current": 7, "total": 30}).encode())
    assert f.view().file_path == "box.gcode" and f.view().layers == 7 and f.view().head is None
    f.feed(contract.PRINTER_LAYER, json.dumps({"layer": 8, "z": 1.6, "file_pos": 10, "source": "markers"}).encode())
    assert f.view().layers == 8 and f.view().file_path == "box.gcode"
    hold = {"phase": "held", "hold_id": 1, "layer": 8, "origin": {"x": 100, "y": 100, "z": 1.6}}
    f.feed(contract.PRINTER_HOLD, json.dumps(hold).encode())
    assert f.view().layers == 7, "held on layer 8's first line: 7 layers are printed"
    assert f.view().head == (100, 100, 1.6), "no head reported: the origin"
    moved = {
        "event": "moved",
        "source": "printmesh",
        "payload": {"hold_id": 1, "position": {"x": 70, "y": 130, "z": 6.6}},
    }
    f.feed(contract.PRINTER_EVENT, json.dumps(moved).encode())
    assert f.view().head == (70, 130, 6.6), "today's bridge: the hold's last moved event"
    f.feed(contract.PRINTER_HOLD, json.dumps({**hold, "phase": "busy", "head": {"x": 130, "y": 70, "z": 6.6}}).encode())
    assert f.view().head == (130, 70, 6.6), "the bridge's head wins"
    f.feed(contract.PRINTER_HOLD, b"not json")  # malformed: ignored, the state is kept
    f.feed(contract.PRINTER_LAYER_PROGRESS, b"[1, 2]")
    assert f.view().head == (130, 70, 6.6) and f.view().layers == 7
    f.feed(contract.PRINTER_HOLD, json.dumps({"phase": "idle"}).encode())
    assert f.view().layers == 8 and f.view().head is None
    f.feed(contract.PRINTER_HOLD, json.dumps({**hold, "hold_id": 2, "layer": 8}).encode())
    assert f.view().head == (100, 100, 1.6), "a new hold forgets the last one's moves"


def test_the_file_is_known_from_the_layer_table_or_events_before_the_job_topic_says():
    f = PrinterFollower("demo")
    f.feed(
        contract.PRINTER_JOB, json.dumps({"file_path": "old.gcode", "file_origin": "local"}).encode()
    )  # the last print's
    f.feed(
        contract.PRINTER_LAYERS,
        json.dumps(
            {
                "path": "new.gcode",
                "source": "markers",
                "file_size": 0,
                "total_layers": 0,
                "total_height": 0,
                "layers": [],
            }
        ).encode(),
    )
    assert f.view().file_path == "new.gcode"
    f.feed(
        contract.PRINTER_LAYER,
        json.dumps({"layer": 1, "z": 0.2, "file_pos": 1, "source": "markers", "path": "next.gcode"}).encode(),
    )
    assert f.view().file_path == "next.gcode" and f.view().layers == 1
