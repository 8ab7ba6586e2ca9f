"""A broker restart during a capture print, all real: mosquitto (with persistence, restarted
on the same port), ``octoprint serve`` with the virtual printer and the bridge, a camera
agent, and the coordinator, printing the sample box (30 layers, a 3x3 grid every 5).

mosquitto publishes every client's last will as it shuts down and, with persistence, keeps
those ``offline`` statuses retained across the restart: the worst case for telling a broker
restart from a dead holder. Checked, for a 3 s and a 40 s outage:

* every component's status is ``online`` again within 5 s of the broker's return (the
  status message's own ``ts``, written by the component when it reconnected);
* no planned layer is lost silently: each has its metadata file, complete, or ``missed``
  with the bridge's reason;
* the bridge kept its plan (no ``hold_disarmed``), and a 3 s outage between two planned
  layers costs none of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentProcess, Observer, make_runtime
from octoprint_harness import OctoPrint, start_octoprint
from virtual_camera_support import SAMPLE

from printmesh_core.models.coordinator import LayerCapture
from printmesh_core.mqtt import Message
from printmesh_devkit.broker import LocalBroker, mosquitto_path

PRINTER, CAMS, COORD = "chaosprinter", "chaoscams", "chaoscoord"
BASE = f"printmesh/{PRINTER}/printer"
PLANNED = [5, 10, 15, 20, 25, 30]
COMPONENTS = {
    "bridge": f"{BASE}/status",
    "camera agent": f"printmesh/{CAMS}/camera/status",
    "coordinator": f"printmesh/{COORD}/coordinator/status",
}
BACK_WITHIN = 5.0


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    """This module's broker keeps retained messages across a restart, as a deployed one does."""
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed: run .ci/run or apt-get install mosquitto")
    with LocalBroker(kind="mosquitto", persistence=True) as b:
        yield b


class Back:
    """A connection made right after the restart: when each component said ``online`` again."""

    def __init__(self, broker: LocalBroker, since: float) -> None:
        self.since = since
        self.seen: dict[str, float] = {}
        self.runtime = make_runtime(broker, f"chaos-watch-{time.monotonic_ns()}")
        self.runtime.subscribe("printmesh/+/+/status", self._status, qos=1)
        self.runtime.start()

    def _status(self, message: Message) -> None:
        body = json.loads(message.payload)
        fresh = body.get("ts", 0) >= self.since - 0.5  # a retained status from before the restart is not "back"
        for name, topic in COMPONENTS.items():
            if message.topic == topic and body.get("state") == "online" and fresh:
                self.seen.setdefault(name, body["ts"] - self.since)

    def wait(self, timeout: float = 30) -> dict[str, float]:
        end = time.monotonic() + timeout
        while len(self.seen) < len(COMPONENTS) and time.monotonic() < end:
            time.sleep(0.05)
        self.runtime.stop()
        return dict(self.seen)


def restart(broker: LocalBroker, down: float) -> tuple[float, dict[str, float]]:
    """Stop the broker (it sends every will), wait, start it again: (its return, who was back when)."""
    broker.stop()
    time.sleep(down)
    broker.start()
    since = time.time()
    back = Back(broker, since).wait()
    print(f"outage {down:g} s: back after {', '.join(f'{k} {v:.2f} s' for k, v in sorted(back.items()))}")
    assert set(back) == set(COMPONENTS), f"not back online: {set(COMPONENTS) - set(back)}"
    assert max(back.values()) <= BACK_WITHIN, back
    return since, back


@pytest.fixture
def mesh(
    broker: LocalBroker, observer: Observer, run_agent: Callable[..., AgentProcess], tmp_path: Path
) -> Iterator[Callable[[], tuple[OctoPrint, Path]]]:
    started: list[OctoPrint] = []

    def build() -> tuple[OctoPrint, Path]:
        settings = {"node_id": PRINTER, "mqtt": {"host": "127.0.0.1", "port": broker.port}}
        octoprint = start_octoprint(tmp_path / "octoprint", settings)
        started.append(octoprint)
        run_agent("camera", {"node_id": CAMS, "camera": {"cameras": [
            {"name": "bed", "source": {"type": "synthetic", "fps": 30}, "width": 320, "height": 240}]}})  # fmt: skip
        captures = tmp_path / "captures"
        spec = {"node": PRINTER, "plan": {"every": 5}, "grid": {"size": 3, "spacing": 30}, "settle": 0.05,
                "cameras": [{"node": CAMS, "camera": "bed"}]}  # fmt: skip
        run_agent("coordinator", {"node_id": COORD, "coordinator": {"captures_dir": str(captures), "printers": [spec]}})
        octoprint.wait_operational()
        observer.topic(f"{BASE}/hold", where=lambda d: d["armed"] is not None, timeout=30)
        return octoprint, captures

    yield build
    for octoprint in started:
        octoprint.stop()


def start_print(octoprint: OctoPrint, observer: Observer, speed: int) -> int:
    octoprint.api("POST", "/api/printer/command", {"commands": [f"M220 S{speed}"]})
    mark = observer.mark()
    octoprint.upload(SAMPLE.name, SAMPLE.read_bytes())
    return mark


def captured(observer: Observer, mark: int, layer: int, timeout: float = 120) -> dict[str, Any]:
    topic = f"printmesh/{COORD}/coordinator/{PRINTER}/capture"
    return observer.topic(topic, after=mark, where=lambda d: d["layer"] == layer, timeout=timeout)


def layers_on_disk(captures: Path, timeout: float = 60) -> dict[int, LayerCapture]:
    """Every planned layer's metadata file (the missed ones come after the holder is back)."""
    end = time.monotonic() + timeout
    while True:
        metas = [LayerCapture.model_validate_json(p.read_bytes()) for p in captures.rglob("layer_*_metadata_*.json")]
        layers = {m.layer: m for m in metas}
        assert len(layers) == len(metas), "one metadata file per layer"
        if set(PLANNED) <= set(layers) or time.monotonic() > end:
            return layers
        time.sleep(0.5)


def print_done(octoprint: OctoPrint, timeout: float = 300) -> None:
    """PrintDone may have been published while the observer was away: ask OctoPrint."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = octoprint.api("GET", "/api/job")
        if job["state"] == "Operational" and (job["progress"]["completion"] or 0) >= 100:
            return
        time.sleep(1)
    raise AssertionError(f"the print did not finish: {octoprint.api('GET', '/api/job')}")


def disarmed(observer: Observer, mark: int) -> list[dict[str, Any]]:
    """The plan dropped for its holder (its drop at the print's end is normal)."""
    events = [json.loads(m.payload) for m in observer.messages[mark:] if m.topic == f"{BASE}/event"]
    return [e for e in events if e["event"] == "hold_disarmed" and e["payload"]["reason"] == "holder_offline"]


def test_a_3_s_restart_between_planned_layers_costs_no_layer(mesh, observer, broker):
    octoprint, captures = mesh()
    mark = start_print(octoprint, observer, speed=25)
    captured(observer, mark, 5)  # layer 5's metadata is out: the print runs towards layer 10
    restart(broker, 3.0)
    print_done(octoprint)
    layers = layers_on_disk(captures)
    assert sorted(layers) == PLANNED, sorted(layers)
    incomplete = {n: (m.missed, [f.message for f in m.failures]) for n, m in layers.items() if not m.complete}
    assert not incomplete, incomplete
    assert all(len(m.images) == 9 for m in layers.values())
    assert not disarmed(observer, mark), "the bridge kept its plan through the restart"
    assert octoprint.api("GET", "/api/job")["progress"]["completion"] == 100


def test_a_40_s_restart_records_every_layer_it_cost_and_capturing_resumes(mesh, observer, broker):
    octoprint, captures = mesh()
    mark = start_print(octoprint, observer, speed=25)
    captured(observer, mark, 5)
    back_at, _ = restart(broker, 40.0)
    print_done(octoprint)
    layers = layers_on_disk(captures)
    assert sorted(layers) == PLANNED, f"a planned layer was lost silently: {sorted(layers)}"
    missed = {n: m for n, m in layers.items() if m.missed is not None}
    assert missed, "the 40 s outage covered at least one planned layer"
    for m in missed.values():
        assert m.missed in ("broker_unreachable", "holder_unreachable") and not m.images and not m.complete, m
        assert [f.kind for f in m.failures] == ["layer_missed"] and m.failures[0].code == m.missed
    for n, m in layers.items():
        if m.missed is None:
            assert m.complete and len(m.images) == 9, (n, [f.message for f in m.failures])
    after = [n for n, m in layers.items() if m.missed is None and m.timestamp > back_at + BACK_WITHIN]
    print(f"missed {sorted(missed)} ({sorted({m.missed for m in missed.values()})}); captured after: {after}")
    assert after, "capturing resumed once the mesh was back"
    assert not disarmed(observer, mark), "the bridge kept its plan through the restart"
