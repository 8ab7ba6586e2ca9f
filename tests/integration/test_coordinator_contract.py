"""The coordinator against the bridge's message contract, on a real broker with a real camera agent.

The printer side is ``FakeBridge``: the topics, events and commands the OctoPrint bridge
speaks, driven by the test. This proves the coordinator's half of that contract (arming,
holds, moves, captures from a real synthetic camera, release, files, topics, shared
subscriptions). The end-to-end test with ``octoprint serve`` and the real bridge is the
other half and comes with the bridge's hold wiring.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Observer
from coordinator_support import (
    FakeBridge,
    camera_config,
    coordinator_config,
    printer_entry,
    read_json,
)

from printmesh_camera.framecode import decode_jpeg
from printmesh_core.models.coordinator import JobSummary, LayerCapture
from printmesh_devkit.broker import LocalBroker


@pytest.fixture
def bridges(broker: LocalBroker) -> Iterator[list[FakeBridge]]:
    started: list[FakeBridge] = []
    yield started
    for bridge in started:
        bridge.stop()


def bridge(bridges: list[FakeBridge], broker: LocalBroker, node: str, **kw: object) -> FakeBridge:
    b = FakeBridge(broker, node, **kw).start()  # type: ignore[arg-type]
    bridges.append(b)
    return b


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def camera_online(observer: Observer, node: str = "cam", camera: str = "bed") -> None:
    """A capture asked of a camera that is still starting fails at once (camera_offline): wait for it."""
    observer.topic(f"printmesh/{node}/camera/{camera}/availability", where=lambda d: d["state"] == "online", timeout=20)


def job_dir(captures: Path, printer: str) -> Path:
    dirs = [d for d in (captures / printer).iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def metadata_files(folder: Path) -> list[LayerCapture]:
    return [LayerCapture.model_validate_json(p.read_bytes()) for p in sorted(folder.glob("layer_*_metadata_*.json"))]


def test_layers_are_captured_on_the_grid_with_real_images_and_the_print_released(
    broker, observer: Observer, run_agent, bridges, tmp_path
):
    captures = tmp_path / "captures"
    octo = bridge(bridges, broker, "octo")
    camera = run_agent("camera", camera_config())
    coord = run_agent("coordinator", coordinator_config("coord", captures, [printer_entry("octo")]))
    camera_online(observer)
    plan = octo.wait_armed(holder="coord/coordinator")
    assert plan.every == 5
    assert octo.arm_requests[0].holder == "coord/coordinator"
    octo.start_print("parts/cube.gcode")
    for layer in (5, 10):
        hold = octo.hold_at(layer, z=round(layer * 0.2, 3))
        assert hold.released.wait(30), f"layer {layer} was never released; coordinator log:\n{coord.log()}"
        assert len(hold.releases) == 1
        moves = [m for m, _ in hold.moves]
        assert [(m.x, m.y) for m in moves] == [(80, 80), (100, 80), (120, 80), (120, 100), (100, 100), (80, 100),
                                               (80, 120), (100, 120), (120, 120), (50, 60)]  # fmt: skip
        assert all(m.z == pytest.approx(hold.z + 5) for m in moves[:-1]) and moves[-1].z is None
        reply = "printmesh/reply/coord-coordinator/octo/printer"  # the reply namespace
        assert {who for _, who in hold.moves} == {reply}, "MQTT 5 response topic"
    mark = observer.mark()
    octo.end_print()
    folder = job_dir(captures, "octo")
    wait_for(lambda: (folder / "job_summary.json").exists(), what="the job summary")
    assert folder.name.startswith("cube_") and len(folder.name) == len("cube_YYYYmmdd_HHMMSS")

    layers = metadata_files(folder)
    assert [md.layer for md in layers] == [5, 10]
    for md in layers:
        assert md.complete and not md.failures and len(md.images) == 9, md.failures
        assert md.gcode_file == "parts/cube.gcode" and md.print_start_time == octo.started_at
        assert md.settings.grid_size == 3 and md.settings.grid_center.x == 100 and md.z_height == md.layer * 0.2
        t = md.timings
        assert t.hold_duration + 0.002 >= t.waiting_for_moves + t.settle + t.capture + t.release > 0  # rounded to ms
        for image in md.images:
            data = (captures / image.path).read_bytes()
            assert image.path.startswith(f"octo/{folder.name}/layer_{md.layer:04d}_pos_{image.index:02d}_")
            assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
            assert hashlib.sha256(data).hexdigest() == image.sha256 and len(data) == image.size
            stamp = decode_jpeg(data)
            assert stamp is not None and stamp.label == f"L{md.layer:04d} P{image.index:02d}", stamp
    summary = JobSummary.model_validate(read_json(folder / "job_summary.json"))
    assert (summary.layers_captured, summary.images, summary.failures) == ([5, 10], 18, [])
    assert summary.outcome == "done" and summary.coordinators == ["coord"]
    assert summary.total_hold_time == pytest.approx(sum(md.timings.hold_duration for md in layers), abs=0.01)

    published = observer.topic("printmesh/coord/coordinator/octo/summary", after=mark, timeout=10)
    assert published["images"] == 18
    capture = json.loads(observer.on("printmesh/coord/coordinator/octo/capture")[-1].payload)
    assert capture["layer"] == 10 and len(capture["images"]) == 9
    state = observer.topic("printmesh/coord/coordinator/octo/state", where=lambda d: d["last_layer"] == 10)
    assert state["images"] == 18 and state["failures"] == 0
    assert observer.topic("homeassistant/sensor/printmesh_coord_coordinator/octo_last_layer/config")
    assert not list(captures.rglob("*.part")), "no temporary file left behind"
    assert coord.stop() == 0 and camera.stop() == 0


def test_two_coordinators_split_the_holds_and_none_is_handled_twice_or_missed(
    broker, observer: Observer, run_agent, bridges, tmp_path
):
    captures = tmp_path / "captures"  # shared, as on a network share
    printers = ["p1", "p2", "p3"]
    fleet = [bridge(bridges, broker, p) for p in printers]
    run_agent("camera", camera_config(cameras=("bed",)))
    entries = [printer_entry(p, grid={"size": 1}, settle=0) for p in printers]
    shared = {"sharing": "subscription"}  # an MQTT 5 shared subscription hands out the holds
    a = run_agent("coordinator", coordinator_config("coord-a", captures, entries, **shared))
    b = run_agent("coordinator", coordinator_config("coord-b", captures, entries, **shared))
    for who in ("coord-a", "coord-b"):
        observer.topic(f"printmesh/{who}/coordinator/status", where=lambda d: d["state"] == "online", timeout=20)
    camera_online(observer)
    for printer in fleet:
        printer.wait_armed()
    layers = [5, 10, 15, 20, 25, 30]
    failures: list[str] = []

    def print_job(printer: FakeBridge) -> None:
        printer.start_print(f"{printer.node}.gcode")
        for layer in layers:
            wait_for(lambda: printer.armed is not None, what=f"{printer.node} armed")
            hold = printer.hold_at(layer, z=layer * 0.2)
            if not hold.released.wait(30):
                failures.append(f"{printer.node} layer {layer} never released")
                return

    threads = [threading.Thread(target=print_job, args=(p,)) for p in fleet]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, [*failures, a.log()[-3000:], b.log()[-3000:]]
    # who answered: the requester level of the reply namespace (printmesh/reply/<requester>/...)
    handled: dict[str, int] = {"coord-a-coordinator": 0, "coord-b-coordinator": 0}
    for printer in fleet:
        assert [h.layer for h in printer.holds.values()] == layers
        for hold in printer.holds.values():
            assert len(hold.releases) == 1, f"{printer.node} hold {hold.hold_id}: {hold.releases}"
            who = {w for _, w in hold.moves} | set(hold.releases)
            assert len(who) == 1, f"{printer.node} layer {hold.layer} handled by {who}"
            handled[who.pop().split("/")[2]] += 1  # type: ignore[union-attr]
    assert sum(handled.values()) == len(printers) * len(layers)
    assert all(n > 0 for n in handled.values()), f"one coordinator did everything: {handled}"
    for printer in printers:
        folder = job_dir(captures, printer)
        wait_for(lambda f=folder: len(metadata_files(f)) >= len(layers), what=f"{printer}'s metadata")
        mds = metadata_files(folder)
        assert sorted(md.layer for md in mds) == layers, "every layer exactly once"
        assert all(md.complete for md in mds)
        assert {md.coordinator for md in mds} <= {"coord-a", "coord-b"}


def test_camera_agent_killed_mid_grid_releases_and_the_metadata_says_so(
    broker, observer: Observer, run_agent, bridges, tmp_path
):
    captures = tmp_path / "captures"
    octo = bridge(bridges, broker, "octo", move_time=0.3)
    camera = run_agent("camera", camera_config())
    run_agent("coordinator", coordinator_config("coord", captures, [printer_entry("octo")]))
    camera_online(observer)
    octo.wait_armed()
    octo.start_print()
    mark = observer.mark()
    hold = octo.hold_at(5, z=1.0)
    observer.wait_for(lambda m: m.topic.startswith("printmesh/cam/camera/bed/capture/"), after=mark, timeout=20)
    camera.stop(signal.SIGKILL)
    assert hold.released.wait(30)
    assert len(hold.releases) == 1 and len(hold.moves) < 10, "the remaining points were skipped"
    md = LayerCapture.model_validate(
        observer.topic("printmesh/coord/coordinator/octo/capture", after=mark, timeout=10)
    )  # fmt: skip
    assert not md.complete and len(md.images) < 9  # the first image may die with its answer
    assert md.failures[0].kind in ("camera_offline", "capture_timeout"), md.failures
    assert md.metadata_path and (captures / md.metadata_path).exists()


def test_a_refused_move_releases_at_once(broker, observer: Observer, run_agent, bridges, tmp_path):
    captures = tmp_path / "captures"
    octo = bridge(bridges, broker, "octo")
    run_agent("camera", camera_config())
    run_agent("coordinator", coordinator_config("coord", captures, [printer_entry("octo")]))
    camera_online(observer)
    octo.wait_armed()
    octo.refuse_moves = "out_of_range"
    mark = observer.mark()
    hold = octo.hold_at(5, z=1.0)
    assert hold.released.wait(20) and len(hold.moves) == 1
    md = observer.topic("printmesh/coord/coordinator/octo/capture", after=mark, timeout=10)
    assert md["failures"][0]["kind"] == "move_refused" and md["failures"][0]["code"] == "out_of_range"


def test_stopping_the_coordinator_mid_hold_releases_first(broker, observer: Observer, run_agent, bridges, tmp_path):
    captures = tmp_path / "captures"
    octo = bridge(bridges, broker, "octo", move_time=2.0)
    run_agent("camera", camera_config())
    coord = run_agent("coordinator", coordinator_config("coord", captures, [printer_entry("octo")]))
    camera_online(observer)
    octo.wait_armed()
    mark = observer.mark()
    hold = octo.hold_at(5, z=1.0)
    wait_for(lambda: len(hold.moves) == 1, what="the first move")
    assert coord.stop(signal.SIGTERM) == 0
    assert hold.released.is_set() and len(hold.releases) == 1
    md = observer.topic("printmesh/coord/coordinator/octo/capture", after=mark, timeout=5)
    assert md["failures"][0]["kind"] == "aborted" and "stopping" in md["failures"][0]["message"]
    status = observer.topic("printmesh/coord/coordinator/status", after=mark, where=lambda d: d["state"] == "offline")
    assert status["reason"] == "shutdown"


def test_a_plan_that_does_not_fit_is_refused_and_never_armed(broker, observer: Observer, run_agent, bridges, tmp_path):
    octo = bridge(bridges, broker, "octo")
    wide = printer_entry("octo", grid={"size": 3, "spacing": 120})
    coord = run_agent("coordinator", coordinator_config("coord", tmp_path, [wide]))
    state = observer.topic("printmesh/coord/coordinator/octo/state", where=lambda d: d["phase"] == "refused")
    assert state["message"].startswith("printer octo: plan refused: grid point 0 (-20, -20) is out of bounds")
    time.sleep(0.5)
    assert octo.armed is None and not octo.arm_requests
    assert "plan refused: grid point 0 (-20, -20)" in coord.log()


def test_abort_command_stops_the_sequence(broker, observer: Observer, run_agent, bridges, tmp_path):
    octo = bridge(bridges, broker, "octo", move_time=0.5)
    run_agent("camera", camera_config())
    run_agent("coordinator", coordinator_config("coord", tmp_path, [printer_entry("octo")]))
    camera_online(observer)
    octo.wait_armed()
    mark = observer.mark()
    hold = octo.hold_at(5, z=1.0)
    wait_for(lambda: len(hold.moves) == 1, what="the first move")
    observer.publish("printmesh/coord/coordinator/cmd/abort", json.dumps({"id": "stop-1", "printer": "octo"}))
    answer = observer.topic("printmesh/coord/coordinator/res/abort", after=mark)
    assert answer["ok"] and answer["data"] == {"printers": ["octo"]}
    assert hold.released.wait(10) and len(hold.releases) == 1
    md = observer.topic("printmesh/coord/coordinator/octo/capture", after=mark, timeout=10)
    assert md["failures"][0]["kind"] == "aborted"
    observer.publish("printmesh/coord/coordinator/cmd/abort", json.dumps({"id": "stop-2", "printer": "nope"}))
    bad = observer.topic("printmesh/coord/coordinator/res/abort", after=mark, where=lambda d: d["id"] == "stop-2")
    assert bad["error"]["code"] == "unknown_printer"


def test_with_mqtt_3_1_1_answers_come_on_the_res_topics(broker, observer: Observer, run_agent, bridges, tmp_path):
    octo = bridge(bridges, broker, "octo")
    run_agent("camera", camera_config())
    cfg = coordinator_config("coord", tmp_path, [printer_entry("octo", grid={"size": 1})])
    run_agent("coordinator", {**cfg, "mqtt": {"protocol": "3.1.1"}})
    camera_online(observer)
    octo.wait_armed()
    mark = observer.mark()
    hold = octo.hold_at(5, z=1.0)
    assert hold.released.wait(20)
    assert {who for _, who in hold.moves} == {None}, "no response topic with MQTT 3.1.1"
    md = observer.topic("printmesh/coord/coordinator/octo/capture", after=mark, timeout=10)
    assert md["complete"] and len(md["images"]) == 1
