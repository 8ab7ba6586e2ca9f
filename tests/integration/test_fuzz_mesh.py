"""Fuzz the whole mesh while it prints: every topic any component reads gets malformed messages.

A real OctoPrint (virtual printer, the bridge) prints the sample box (examples/sample-box.gcode,
30 layers: 6 held layers x 9 grid points) with a camera agent, the coordinator, a host agent and
a sensors agent on a real mosquitto. Every route of the contract (``fuzz_support.targets``: a
new route is fuzzed without changing this file) gets malformed variants of its model drawn
with hypothesis (fixed seed: ``derandomize``, a bounded number of examples), plus issue 13's
repros: retained before anything starts (every process must start over them), then live
throughout the print, and retained again on the topics of items nobody owns. Dangerous
commands (hold, move, pause, cancel, release, gcode, abort, capture) are only sent malformed:
``fuzz_support.refused`` keeps only what the contract refuses.

Then: every process is still up and says it is online, with no handler failure counted; the
print completed; every planned layer has its 9 checked images; and OctoPrint's serial log has
no move outside the 200 mm volume and no ``F0``.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fuzz_support as fz
import pytest
from conftest import AgentProcess, Observer
from octoprint_harness import start_octoprint
from printing import FAST, sends

from printmesh_core import contract
from printmesh_core.contract import CommandRoute, Route, Unreadable
from printmesh_core.models.coordinator import JobSummary, LayerCapture
from printmesh_core.mqtt import Message
from printmesh_devkit.broker import LocalBroker

ROOT = Path(__file__).resolve().parents[2]
BOX = ROOT / "examples" / "sample-box.gcode"
NODES = {"printer": "fzprinter", "camera": "fzcams", "host": "fzhost", "sensors": "fzsens", "coordinator": "fzcoord"}
REAL = {"camera": "bed", "sensors": "s", "coordinator": NODES["printer"]}  # the '+' level of each component's routes
GHOST = "fzghost"  # an item nobody owns: retained junk there clobbers nobody's state
PLANNED = [5, 10, 15, 20, 25, 30]
EXAMPLES = 12  # per route: ~500 variants, drawn in ~10 s
RATE = 200.0  # live fuzz messages per second during the print (paced, not a flood)
AXES = re.compile(r"([XYZEF])(-?[0-9.]+)")
Sent = tuple[str, bytes]


def wait(observer: Observer, route: Route[Any], where: str, after: int = 0, timeout: float = 30,
         check: Callable[[Any], bool] = lambda v: True) -> Any:  # fmt: skip
    """The next message on ``where`` that its route reads and ``check`` accepts: the junk we send is skipped."""

    def match(m: Message) -> bool:
        if m.topic != where or not m.payload:
            return False
        try:
            return check(route.read(m.payload))
        except Unreadable:
            return False

    return route.read(observer.wait_for(match, timeout, after).payload)


def topic(target: fz.Target, item: str | None) -> str | None:
    """The absolute topic of ``target`` on its component, its '+' levels named; None where unsafe."""
    node, route = NODES[target.component], target.route
    if target.route is fz.ANSWERS:  # the coordinator's MQTT 5 reply subtree, for its requests to the bridge
        return f"printmesh/reply/{node}-coordinator/{NODES['printer']}/printer"
    base = f"printmesh/{node}/{target.component}"
    if isinstance(route, CommandRoute):
        return f"{base}/cmd/{route.name}"
    levels = list(route.levels)
    if route.levels[-2:] == ("capture", "+"):  # an image: of no request anybody made
        levels[-1] = "fz-junk"
    names = [item or REAL.get(target.component, GHOST)] * levels.count("+")
    filled = [names.pop() if level == "+" else level for level in levels]
    return "/".join([base, *filled])


def repros() -> list[Sent]:
    """Issue 13's cases, as they were reported."""
    printer, coordinator = (f"printmesh/{NODES[c]}/{c}" for c in ("printer", "coordinator"))
    body = {"hold_id": 999, "layer": 5, "origin": {"x": 1.0, "y": 2.0, "z": 1.0}, "z": 1.2, "path": "x.gcode",
            "started_at": 1_700_000_000.0}  # fmt: skip

    def held(**over: Any) -> bytes:
        doc = {"ts": 1_700_000_000.0, "event": "held", "source": "printmesh", "payload": {**body, **over}}
        return json.dumps(doc).encode()

    out: list[Sent] = []
    nan = held().replace(b"1700000000.0}", b"NaN}")
    for payload in (held(started_at=1e20), held(started_at=-1e20), nan, held(z=float("nan"))):
        out += [(f"{printer}/held", payload), (f"{printer}/event", payload)]
    out.append((f"{printer}/job", b'{"ts": 1700000000, "file_name": "x.gcode", "started_at": NaN}'))
    out.append((f"{printer}/cmd/move", b'{"id": "fz-move", "x": "100", "y": "100"}'))
    out.append((f"{printer}/cmd/hold", b'{"id": "fz-hold", "layer": true}'))
    deep = "[" * 1000 + "1" + "]" * 1000
    for component, names in (("printer", ("hold", "move", "release", "pause", "resume", "cancel", "gcode")),
                             ("camera", ("capture", "cameras")), ("host", ("refresh",)), ("sensors", ("read",)),
                             ("coordinator", ("abort",))):  # fmt: skip
        for name in names:
            out.append(
                (
                    f"printmesh/{NODES[component]}/{component}/cmd/{name}",
                    f'{{"id": "fz-deep-{name}", "x": {deep}}}'.encode(),
                )
            )
    out.append((f"{coordinator}/status", b"[" * 1000))
    return out


def start_mesh(broker: LocalBroker, run_agent: Callable[..., AgentProcess], tmp_path: Path) -> dict[str, Any]:
    octoprint = start_octoprint(tmp_path / "octoprint", {"node_id": NODES["printer"],
                                "mqtt": {"host": "127.0.0.1", "port": broker.port}})  # fmt: skip
    captures = tmp_path / "captures"
    printer = {"node": NODES["printer"], "plan": {"every": 5}, "grid": {"size": 3, "spacing": 30}, "settle": 0.05,
               "cameras": [{"node": NODES["camera"], "camera": "bed"}]}  # fmt: skip
    agents = {
        "camera": run_agent("camera", {"node_id": NODES["camera"], "camera": {"cameras": [
            {"name": "bed", "source": {"type": "synthetic", "fps": 30}, "width": 640, "height": 480}]}}),
        "coordinator": run_agent("coordinator", {"node_id": NODES["coordinator"], "coordinator": {
            "captures_dir": str(captures), "printers": [printer]}}),
        "host": run_agent("host", {"node_id": NODES["host"], "host": {"interval": 2}}),
        "sensors": run_agent("sensors", {"node_id": NODES["sensors"], "sensors": {"sensors": [
            {"name": "s", "driver": "simulated", "interval": 1}]}}),
    }  # fmt: skip
    return {"octoprint": octoprint, "agents": agents, "captures": captures}


def check_serial_log(serial: str) -> int:
    """No G0/G1 outside the 200 mm volume and no F0, anywhere in the print; returns the moves checked."""
    moves = 0
    for _, cmd in sends(serial):
        if cmd.split(" ", 1)[0] not in ("G0", "G1"):
            continue
        moves += 1
        values = {a: float(v) for a, v in AXES.findall(cmd)}
        assert all(0 <= values[a] <= 200 for a in "XYZ" if a in values), f"move outside the volume: {cmd}"
        assert values.get("F", 1) > 0, f"F0 sent: {cmd}"
    return moves


@pytest.mark.timeout(600)
def test_malformed_traffic_on_every_topic_changes_nothing_while_the_mesh_prints(
    broker: LocalBroker, observer: Observer, run_agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    variants = fz.draw_all(EXAMPLES)
    targets = {f"{t.component}:{t.name}": t for t in fz.targets()}
    assert set(variants) == set(targets) and all(variants.values()), "every route has malformed variants"
    live: list[tuple[str, bytes, str | None]] = []  # (topic, payload, where to retain it during the print)
    retained: list[Sent] = []
    for key, payloads in variants.items():
        target = targets[key]
        real = topic(target, GHOST if target.name == "CAMERA_PRESS" else None)  # a real press is valid
        ghost = topic(target, GHOST) if "+" in getattr(target.route, "levels", ()) else None
        if target.route is contract.STATUS:  # statuses of holders: anybody may fake one
            ghost = f"printmesh/{GHOST}/{target.component}/status"
        live += [(real, p, ghost) for p in payloads]
        if not isinstance(target.route, CommandRoute):
            retained.append((real, payloads[0]))  # before anything starts: the processes start over it
    live += [(where, payload, None) for where, payload in repros()]
    random.Random(13).shuffle(live)  # every topic's junk all along the print, the same order in every run
    cleared: set[str] = set()
    for where, payload in retained + [(t, p) for t, p in repros() if "/cmd/" not in t]:
        observer.publish(where, payload, retain=True)  # everything starts over these
        cleared.add(where)

    mesh = start_mesh(broker, run_agent, tmp_path)
    octoprint, agents, captures = mesh["octoprint"], mesh["agents"], mesh["captures"]
    try:
        octoprint.wait_operational()
        hold = f"printmesh/{NODES['printer']}/printer/hold"
        wait(observer, contract.PRINTER_HOLD, hold, timeout=60, check=lambda h: h.armed is not None)
        for component, node in NODES.items():
            status = f"printmesh/{node}/{component}/status"
            wait(observer, contract.STATUS, status, check=lambda s: s.state == "online")

        stop = threading.Event()
        count = [0]

        def fuzz() -> None:
            """Live junk on every topic, and retained junk on items nobody owns, until the print ends."""
            i = 0
            while not stop.is_set():
                where, payload, ghost = live[i % len(live)]
                observer.publish(where, payload)
                if ghost is not None and i % 5 == 0:
                    observer.publish(ghost, payload, retain=True)
                    cleared.add(ghost)
                i += 1
                count[0] = i
                stop.wait(1 / RATE)

        sender = threading.Thread(target=fuzz, name="fuzz", daemon=True)
        mark = observer.mark()
        octoprint.api("POST", "/api/printer/command", {"commands": FAST})
        data = re.sub(rb"(?m)^M1(09|90)\b", b"M117", BOX.read_bytes())
        sender.start()
        octoprint.upload("sample-box.gcode", data)
        event = f"printmesh/{NODES['printer']}/printer/event"
        try:
            wait(observer, contract.PRINTER_EVENT, event, mark, 420, lambda e: e.event == "PrintDone")
        finally:
            stop.set()
            sender.join(5)
        summary_topic = f"printmesh/{NODES['coordinator']}/coordinator/{NODES['printer']}/summary"
        summary: JobSummary = wait(observer, contract.COORDINATOR_SUMMARY, summary_topic, mark, 60)
        assert count[0] >= len(live) // 2, f"only {count[0]} fuzz messages were sent"

        # every process is up, online, and counted what it refused, without a handler failure
        assert octoprint.proc.poll() is None
        for name, agent in agents.items():
            assert agent.proc.poll() is None, f"{name} died: {agent.log()[-3000:]}"
        late = observer.mark()
        counts = {}
        for component, node in NODES.items():  # a fresh status, with the counts of the whole run
            observer.publish(f"printmesh/{node}/{component}/cmd/nosuch", b"[" * 100)
            status = wait(observer, contract.STATUS, f"printmesh/{node}/{component}/status", late, 20,
                          lambda s: s.rejected > 0)  # fmt: skip
            assert status.state == "online" and status.failed == 0, (component, status)
            counts[component] = status.rejected

        # the print completed, and every planned layer has its 9 checked images
        assert summary.outcome == "done" and summary.layers_captured == PLANNED, summary
        assert summary.images == 9 * len(PLANNED) and not summary.failures, summary.failures
        folder = captures / NODES["printer"] / summary.job
        metas = [LayerCapture.model_validate_json(p.read_bytes()) for p in folder.glob("layer_*_metadata_*.json")]
        assert sorted(m.layer for m in metas) == PLANNED
        for meta in metas:
            assert meta.complete and sorted(i.index for i in meta.images) == list(range(9)), meta.failures
            assert all((captures / i.path).stat().st_size == i.size for i in meta.images)
        assert check_serial_log(octoprint.serial_log()) > 1000
        assert "Traceback" not in agents["coordinator"].log()
        print(f"fuzz: {len(live)} variants over {len(targets)} targets, {count[0]} sent live, "
              f"{len(cleared)} topics retained; refused per component: {counts}")  # fmt: skip
    finally:
        for where in cleared:
            observer.publish(where, b"", retain=True)
        octoprint.stop()
