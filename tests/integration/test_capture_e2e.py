"""Layer capture end to end, all real: mosquitto, ``octoprint serve`` with the virtual printer
and the bridge, a camera agent with the synthetic source, and the coordinator.

A 20-layer PrusaSlicer file is printed with a 3x3 grid captured every 5 layers. The
images, the metadata files and OctoPrint's own serial log are the evidence: every planned
layer has its 9 images, each image's drawn stamp names its layer and grid index, every
move stayed inside the volume, nothing extruded during a hold, and every file line was
sent exactly once. The fault tests break one part mid-sequence and check that the print
still completes and the metadata says what happened.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentProcess, Observer
from job_page_browser import check_job_page, chromium, final_page, shot_path
from octoprint_harness import OctoPrint, start_octoprint
from printing import FAST, check_serial_log, printable, sends

from printmesh_camera.framecode import decode_jpeg
from printmesh_core.models.coordinator import JobSummary, LayerCapture
from printmesh_devkit.broker import LocalBroker

PRINTER, CAMS, COORD = "e2eprinter", "e2ecams", "e2ecoord"
BASE = f"printmesh/{PRINTER}/printer"
FILE = "prusa_variable"  # 20 layers, PrusaSlicer, variable layer height
PLANNED = [5, 10, 15, 20]


@dataclass
class Rig:
    octoprint: OctoPrint
    camera: AgentProcess
    coordinator: AgentProcess
    captures: Path
    observer: Observer


def coordinator_config(captures: Path, **printer: Any) -> dict[str, Any]:
    spec = {
        "node": PRINTER,
        "plan": {"every": 5},
        "grid": {"size": 3, "spacing": 30},
        "settle": 0.05,
        "cameras": [{"node": CAMS, "camera": "bed"}],
        **printer,
    }
    return {"node_id": COORD, "coordinator": {"captures_dir": str(captures), "printers": [spec]}}


@pytest.fixture
def rig(
    broker: LocalBroker, observer: Observer, run_agent: Callable[..., AgentProcess], tmp_path: Path
) -> Iterator[Any]:
    started: list[OctoPrint] = []

    def build(bridge: dict[str, Any] | None = None, **printer: Any) -> Rig:
        settings = {"node_id": PRINTER, "mqtt": {"host": "127.0.0.1", "port": broker.port}, **(bridge or {})}
        octoprint = start_octoprint(tmp_path / "octoprint", settings)
        started.append(octoprint)
        camera = run_agent("camera", {"node_id": CAMS, "camera": {"cameras": [
            {"name": "bed", "source": {"type": "synthetic", "fps": 30}, "width": 640, "height": 480}]}})  # fmt: skip
        captures = tmp_path / "captures"
        coordinator = run_agent("coordinator", coordinator_config(captures, **printer))
        octoprint.wait_operational()
        observer.topic(f"{BASE}/hold", where=lambda d: d["armed"] is not None, timeout=30)
        return Rig(octoprint, camera, coordinator, captures, observer)

    yield build
    for octoprint in started:
        octoprint.stop()


def run_print(rig: Rig, timeout: float = 180) -> tuple[bytes, JobSummary]:
    data = printable(FILE)
    rig.octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    mark = rig.observer.mark()
    rig.octoprint.upload(f"{FILE}.gcode", data)
    rig.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=timeout)
    summary = rig.observer.topic(f"printmesh/{COORD}/coordinator/{PRINTER}/summary", after=mark, timeout=30)
    return data, JobSummary.model_validate(summary)


def layer_files(rig: Rig, summary: JobSummary) -> dict[int, LayerCapture]:
    folder = rig.captures / PRINTER / summary.job
    metas = [LayerCapture.model_validate_json(p.read_bytes()) for p in folder.glob("layer_*_metadata_*.json")]
    assert len({m.layer for m in metas}) == len(metas), "one metadata file per layer"
    return {m.layer: m for m in metas}


def test_every_planned_layer_gets_a_checked_3x3_grid_and_the_print_completes(rig):
    r = rig()
    data, summary = run_print(r)
    assert summary.outcome == "done" and summary.layers_captured == PLANNED and not summary.failures, summary
    assert summary.images == 9 * len(PLANNED)
    layers = layer_files(r, summary)
    assert sorted(layers) == PLANNED
    for layer, meta in layers.items():
        assert meta.complete and meta.gcode_file == f"{FILE}.gcode" and meta.z_height is not None
        assert sorted(i.index for i in meta.images) == list(range(9))
        assert meta.settings.grid_size == 3 and meta.settings.grid_spacing == 30
        assert meta.timings.hold_duration > 0 and meta.release is not None and meta.release.returned
        for image in meta.images:
            jpeg = (r.captures / image.path).read_bytes()
            assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9", image.path
            stamp = decode_jpeg(jpeg)
            assert stamp is not None and stamp.label == f"L{layer:04d} P{image.index:02d}", (image.path, stamp)
    assert (r.captures / PRINTER / summary.job / "job_summary.json").exists()
    check_serial_log(r.octoprint.serial_log(), data)
    final_page(r.captures / PRINTER / summary.job)  # the job page, in a real browser
    with chromium() as browser:
        seen = check_job_page(browser, r.captures / PRINTER / summary.job, shot_path("e2e_job_page"))
    assert seen == {"images": 9 * len(PLANNED), "videos": 9}


def test_camera_killed_mid_grid_is_recorded_and_the_print_completes(rig):
    r = rig()
    mark = r.observer.mark()
    data = printable(FILE)
    r.octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    r.octoprint.upload(f"{FILE}.gcode", data)
    r.observer.wait_for(lambda m: "/camera/bed/capture/" in m.topic, timeout=60, after=mark)
    r.camera.stop(signal.SIGKILL)
    r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=240)
    summary = JobSummary.model_validate(
        r.observer.topic(f"printmesh/{COORD}/coordinator/{PRINTER}/summary", after=mark, timeout=60)
    )
    first = layer_files(r, summary)[5]
    assert not first.complete and len(first.images) < 9
    assert {f.kind for f in first.failures} & {"camera_offline", "capture_timeout"}, first.failures
    assert first.release is not None and first.release.by == "coordinator"
    assert r.octoprint.api("GET", "/api/job")["progress"]["completion"] == 100
    check_serial_log(r.octoprint.serial_log(), data)


def test_a_move_the_bridge_refuses_aborts_the_grid_and_releases(rig):
    # the coordinator's own margin accepts the grid; the bridge keeps 60 mm from the edges
    r = rig(bridge={"safety": {"margin": 60}}, grid={"size": 3, "spacing": 45})
    data, summary = run_print(r)
    assert summary.outcome == "done"
    for meta in layer_files(r, summary).values():
        assert not meta.complete and any(f.kind == "move_refused" and f.code == "out_of_range" for f in meta.failures)
        assert meta.release is not None and meta.release.returned
    check_serial_log(r.octoprint.serial_log(), data)
    assert not [c for _, c in sends(r.octoprint.serial_log()) if c.startswith("G1 X145") or c.startswith("G1 X55")]


def test_coordinator_killed_during_a_hold_is_released_by_the_bridge(rig):
    r = rig()
    mark = r.observer.mark()
    data = printable(FILE)
    r.octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    r.octoprint.upload(f"{FILE}.gcode", data)
    r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "held", timeout=60)
    killed = time.time()
    r.coordinator.stop(signal.SIGKILL)
    released = r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "released", timeout=10)
    assert released["payload"]["reason"] == "holder_offline" and released["ts"] - killed <= 2.0
    r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=120)
    held = [m for m in r.observer.messages[mark:] if m.topic == f"{BASE}/event" and b'"held"' in m.payload]
    assert len(held) == 1, "with its holder gone, the plan was disarmed: no later hold waited for nobody"
    folder = r.captures / PRINTER
    complete = [LayerCapture.model_validate_json(p.read_bytes()) for p in folder.rglob("layer_*_metadata_*.json")]
    assert not [m for m in complete if m.complete], "no layer claims a grid the dead coordinator never finished"
    check_serial_log(r.octoprint.serial_log(), data)


def test_broker_restart_between_layers_keeps_capturing(rig, broker):
    r = rig()
    mark = r.observer.mark()
    data = printable(FILE)
    r.octoprint.api("POST", "/api/printer/command", {"commands": ["M220 S200"]})  # slower: room for the restart
    r.octoprint.upload(f"{FILE}.gcode", data)
    capture = f"printmesh/{COORD}/coordinator/{PRINTER}/capture"
    r.observer.topic(capture, after=mark, where=lambda d: d["layer"] == 5, timeout=120)
    broker.restart()
    r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=300)
    summary = JobSummary.model_validate(
        r.observer.topic(f"printmesh/{COORD}/coordinator/{PRINTER}/summary", after=mark, timeout=60)
    )
    layers = layer_files(r, summary)
    assert layers[5].complete and summary.outcome == "done"
    later = [layer for layer in PLANNED[1:] if layer in layers]
    assert later and all(layers[layer].complete for layer in later), "capturing resumed after the restart"
    for layer in PLANNED[1:]:
        if layer not in layers:  # a boundary passed while the broker was away: said, not invented
            assert layer not in summary.layers_captured
    check_serial_log(r.octoprint.serial_log(), data)


def test_two_coordinators_split_two_printers_without_handling_a_layer_twice_or_missing_one(
    broker: LocalBroker, observer: Observer, run_agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    printers = ["fleet1", "fleet2"]
    servers = [
        start_octoprint(tmp_path / p, {"node_id": p, "mqtt": {"host": "127.0.0.1", "port": broker.port}})
        for p in printers
    ]
    try:
        cameras = [
            {"name": p, "source": {"type": "synthetic", "fps": 30}, "width": 320, "height": 240} for p in printers
        ]
        run_agent("camera", {"node_id": CAMS, "camera": {"cameras": cameras}})
        captures = tmp_path / "captures"
        specs = [
            {
                "node": p,
                "plan": {"every": 2},
                "grid": {"size": 1},
                "settle": 0,
                "cameras": [{"node": CAMS, "camera": p}],
            }
            for p in printers
        ]
        for name in ("coordA", "coordB"):
            run_agent(
                "coordinator", {"node_id": name, "coordinator": {"captures_dir": str(captures), "printers": specs}}
            )
        for p, server in zip(printers, servers, strict=True):
            server.wait_operational()
            observer.topic(f"printmesh/{p}/printer/hold", where=lambda d: d["armed"] is not None, timeout=30)
        mark = observer.mark()
        for server in servers:
            server.api("POST", "/api/printer/command", {"commands": FAST})
            server.upload(f"{FILE}.gcode", printable(FILE))
        handled: set[str] = set()
        for p in printers:
            observer.topic(
                f"printmesh/{p}/printer/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=240
            )
            holds = [
                json.loads(m.payload) for m in observer.messages[mark:] if m.topic == f"printmesh/{p}/printer/event"
            ]
            held = [h["payload"]["layer"] for h in holds if h["event"] == "held"]
            released = [h["payload"]["reason"] for h in holds if h["event"] == "released"]
            assert held == list(range(2, 21, 2)) and released == ["requested"] * 10, (p, held, released)
            metas = {}
            for path in (captures / p).rglob("layer_*_metadata_*.json"):
                meta = LayerCapture.model_validate_json(path.read_bytes())
                assert meta.layer not in metas, f"{p} layer {meta.layer} handled twice"
                metas[meta.layer] = meta
            assert sorted(metas) == held and all(m.complete and len(m.images) == 1 for m in metas.values())
            handled |= {m.coordinator for m in metas.values()}
        assert handled == {"coordA", "coordB"}, f"the holds were shared between both coordinators: {handled}"
    finally:
        for server in servers:
            server.stop()
