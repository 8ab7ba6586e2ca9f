"""Coordinators sharing printers by ownership (``sharing: owners``, the default) on a plain mosquitto.

Real coordinator processes and a real camera agent; the printers are ``fleet_support.PrintingBridge``:
message-level bridges that print on their own and keep the real bridge's holder rules (four
OctoPrints are too heavy for this machine). Every planned layer's fate is checked at the
printer (held for whom, moved and released by whom) and on the broker (its metadata message).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Observer
from coordinator_support import coordinator_config, printer_entry
from fleet_support import PrintingBridge

from printmesh_coordinator.ownership import DEATH_GRACE, REJOIN, rendezvous

PRINTERS = ("prusa1", "prusa2", "prusa3", "prusa4")  # over co1..co3: co3, co2, co3, co1; over co1, co2: 2 each
EVERY = 3


def holder(node: str) -> str:
    return f"{node}/coordinator"


def camera() -> dict[str, Any]:
    cams = [{"name": p, "source": {"type": "synthetic", "fps": 5}, "width": 160, "height": 120,
             "preview": {"interval": 0}} for p in PRINTERS]  # fmt: skip
    return {"node_id": "cam", "camera": {"cameras": cams}}


def entries() -> list[dict[str, Any]]:
    grid = {"points": [{"x": 90, "y": 90}, {"x": 110, "y": 110}]}
    return [printer_entry(p, plan={"every": EVERY}, grid=grid, cameras=[{"node": "cam", "camera": p}], settle=0)
            for p in PRINTERS]  # fmt: skip


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def printers(broker: Any) -> Iterator[Callable[[int, float], list[PrintingBridge]]]:
    started: list[PrintingBridge] = []

    def start(layers: int, layer_time: float) -> list[PrintingBridge]:
        for node in PRINTERS:
            started.append(PrintingBridge(broker, node, layers, EVERY, layer_time).start())
        return started

    yield start
    for b in started:
        b.stop()


class Fleet:
    """The coordinators of one group, started as processes; captures go to one folder each."""

    def __init__(self, run_agent: Any, observer: Observer, tmp_path: Any) -> None:
        self.run_agent, self.observer, self.tmp_path = run_agent, observer, tmp_path
        self.agents: dict[str, Any] = {}
        self.started: dict[str, float] = {}

    def start(self, node: str) -> Any:
        agent = self.run_agent("coordinator", coordinator_config(node, self.tmp_path / node, entries()))
        self.agents[node] = agent
        self.observer.topic(f"printmesh/{node}/coordinator/status", where=lambda d: d["state"] == "online", timeout=30)
        self.started[node] = time.monotonic()
        return agent

    def owns(self, node: str) -> list[str]:
        msgs = self.observer.on(f"printmesh/{node}/coordinator/fleet")
        return json.loads(msgs[-1].payload)["owns"] if msgs else []

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{a.log()[-2500:]}" for n, a in self.agents.items())


def settled(bridges: list[PrintingBridge], members: list[str], fleet: Fleet) -> None:
    """Every printer armed by its rendezvous owner, and every member's fleet message saying so."""
    names = [holder(m) for m in members]
    want = {b.node: rendezvous(b.node, names) for b in bridges}
    wait_for(lambda: all(b.holder == want[b.node] and b.armed is not None for b in bridges), 30,
             f"holders {want}: {[(b.node, b.holder) for b in bridges]}\n{fleet.logs()}")  # fmt: skip
    for m in members:
        mine = sorted(p for p, h in want.items() if h == holder(m))
        wait_for(lambda m=m, mine=mine: sorted(fleet.owns(m)) == mine, 15, f"{m}'s fleet message owning {mine}")


def metadata(observer: Observer, printer: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in observer.messages
            if m.topic.endswith(f"/coordinator/{printer}/capture") and m.payload]  # fmt: skip


def captured_once(observer: Observer, bridge: PrintingBridge, layers: list[int], fleet: Fleet) -> None:
    """Each of ``layers``: one hold, moved and released by its holder alone, once, and one metadata message."""
    for n in layers:
        layer = bridge.layers.get(n)
        assert layer is not None and layer.hold_id is not None, f"{bridge.node} layer {n} not held: {layer}"
        assert layer.released_by == "requested" and len(layer.releases) == 1, f"{bridge.node}: {layer}"
        requester = f"{layer.holder.split('/')[0]}-coordinator" if layer.holder else None
        assert layer.movers | set(layer.releases) == {requester}, f"{bridge.node} layer {n}: {layer}"
    wait_for(lambda: {md["layer"] for md in metadata(observer, bridge.node)} >= set(layers), 20,
             f"{bridge.node}'s metadata for {layers}\n{fleet.logs()}")  # fmt: skip
    mds = [md for md in metadata(observer, bridge.node) if md["layer"] in layers]
    assert sorted(md["layer"] for md in mds) == layers, f"{bridge.node}: every planned layer exactly once"
    for md in mds:
        layer = bridge.layers[md["layer"]]
        assert md["complete"] and len(md["images"]) == 2 and md["hold_id"] == layer.hold_id, md
        assert holder(md["coordinator"]) == layer.holder, f"{bridge.node} layer {md['layer']}: written by its holder"


def print_all(bridges: list[PrintingBridge]) -> list[threading.Thread]:
    return [b.print_job(f"{b.node}.gcode") for b in bridges]


def join(threads: list[threading.Thread], timeout: float) -> None:
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, end - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a print did not finish"


def start_fleet(run_agent, observer: Observer, tmp_path, bridges: list[PrintingBridge], members: list[str]) -> Fleet:
    """The camera and the coordinators ``members``, once every printer has its owner among them."""
    run_agent("camera", camera())
    fleet = Fleet(run_agent, observer, tmp_path)
    for m in members:
        fleet.start(m)
    settled(bridges, members, fleet)
    return fleet


def test_three_coordinators_four_printers_every_planned_layer_captured_once(
    broker, observer: Observer, run_agent, printers, tmp_path
):
    bridges = printers(12, 0.4)
    members = ["co1", "co2", "co3"]
    fleet = start_fleet(run_agent, observer, tmp_path, bridges, members)
    assert all(fleet.owns(m) for m in members), "the test's printer names give every member one"
    join(print_all(bridges), 120)
    planned = list(range(EVERY, 13, EVERY))
    for b in bridges:
        assert sorted(b.layers) == planned
        captured_once(observer, b, planned, fleet)
        assert not [h for h in b.holders if h[2]], f"{b.node} changed holder mid-job: {b.holders}"
    assert all("Traceback" not in a.log() for a in fleet.agents.values()), fleet.logs()


def test_a_killed_coordinators_printers_move_within_5_s_and_miss_nothing_after(
    broker, observer: Observer, run_agent, printers, tmp_path
):
    bridges = printers(33, 0.4)
    members = ["co1", "co2", "co3"]
    fleet = start_fleet(run_agent, observer, tmp_path, bridges, members)
    victim = "co3"  # owns prusa1 and prusa3
    theirs = [b for b in bridges if b.holder == holder(victim)]
    assert theirs, "the victim must own a printer"
    threads = print_all(bridges)
    first = theirs[0]
    wait_for(lambda: any(md["layer"] == 2 * EVERY for md in metadata(observer, first.node)), 60,
             f"{first.node}'s second planned layer")  # fmt: skip
    wait_for(lambda: time.monotonic() > max(fleet.started.values()) + REJOIN + 0.5, 10, "the members' rejoin window")
    wait_for(lambda: first.current is not None, 10, f"{first.node} held (the kill lands mid-hold)")
    killed = time.monotonic()
    fleet.agents[victim].stop(signal.SIGKILL)
    moved: dict[str, float] = {}
    for b in theirs:
        wait_for(lambda b=b: any(t > killed and h not in (None, holder(victim)) for t, h, _ in b.holders), 10,
                 f"{b.node} taken over\n{fleet.logs()}")  # fmt: skip
        moved[b.node] = next(t for t, h, _ in b.holders if t > killed and h not in (None, holder(victim)))
    join(threads, 180)
    print(f"\nmove after SIGKILL (s): {', '.join(f'{n} {t - killed:.2f}' for n, t in moved.items())}"
          f" (death grace {DEATH_GRACE:g} s)")  # fmt: skip
    for b in bridges:
        planned = list(range(EVERY, 34, EVERY))
        assert sorted(b.layers) == planned
        assert not [lay for lay in b.layers.values() if lay.released_by == "max_hold"], "no hold waited for a watchdog"
        if b in theirs:
            assert moved[b.node] - killed < 5.0, f"{b.node} moved {moved[b.node] - killed:.2f} s after the kill"
            after = [n for n in planned if b.layers[n].started > moved[b.node]]
            assert after, "planned layers after the move"
            captured_once(observer, b, after, fleet)
            lost = [(n, b.layers[n].missed or b.layers[n].released_by) for n in planned
                    if b.layers[n].started <= moved[b.node] and b.layers[n].started > killed - 2]  # fmt: skip
            print(f"{b.node}: new holder {b.holder}; near the kill: {lost}")
        else:
            captured_once(observer, b, planned, fleet)
            assert not [h for h in b.holders if h[2]], f"{b.node} changed holder mid-job: {b.holders}"


def test_a_coordinator_joining_mid_print_takes_no_printer_until_the_job_ends(
    broker, observer: Observer, run_agent, printers, tmp_path
):
    bridges = printers(24, 0.4)
    fleet = start_fleet(run_agent, observer, tmp_path, bridges, ["co1", "co2"])
    threads = print_all(bridges)
    wait_for(lambda: all(metadata(observer, b.node) for b in bridges), 60, "a first planned layer on every printer")
    fleet.start("co3")
    fleet.observer.topic("printmesh/co3/coordinator/fleet", timeout=10)
    time.sleep(REJOIN)  # past co3's settling, and the others have heard it
    assert all(b.printing for b in bridges), "the test needs the prints still running"
    assert fleet.owns("co3") == [], "co3 takes nothing while the printers print"
    join(threads, 180)
    planned = list(range(EVERY, 25, EVERY))
    for b in bridges:
        assert not [h for h in b.holders if h[2]], f"{b.node} changed owner mid-job: {b.holders}"
        captured_once(observer, b, planned, fleet)
    # the job boundary: co3 takes the printers it wins, the rest stay where they were
    settled(bridges, ["co1", "co2", "co3"], fleet)
    assert sorted(fleet.owns("co3")) == ["prusa1", "prusa3"]
