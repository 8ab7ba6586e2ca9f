"""Orchestration overhead per captured layer, 3x3 grid, everything real, against the broker floor.

One run, all on loopback, all real and as shipped:

* mosquitto (``printmesh_devkit.broker.LocalBroker``);
* ``octoprint serve`` with its virtual printer and the printmesh bridge, from ``.venv-octoprint``
  (``printmesh_devkit.virtual_octoprint``), printing ``examples/sample-box.gcode`` (PrusaSlicer,
  30 layers, no heat-up) at ``M220 S<speed>``;
* ``printmesh camera``: one synthetic camera, unpaced (``fps: 0``: a frame is rendered on
  request, no wait for the next frame), 640x480, JPEG quality 85;
* ``printmesh coordinator`` as a subprocess: a 3x3 grid (spacing 30 mm) captured at every
  layer (``--every``), ``settle: 0``, return to origin on, default timeouts.

Per held layer it reads the coordinator's metadata (``<coord>/coordinator/<printer>/capture``,
``LayerCapture.timings``) and, from a bare paho client subscribed beside the parties (the
"wire": it sees each message when its recipient does), who held the ball when: the printer
(from a move or release request to its answer), the camera (from a capture request to its
answer, which the agent publishes right after the JPEG) and the coordinator (everything else:
from an answer, or the ``held`` event, to its next request).

Three figures of overhead per hold, seconds:

* **orchestration overhead** (the issue's definition, the goal's figure): ``hold_duration -
  (waiting_for_moves + settle + release + camera)``. ``hold_duration``, ``waiting_for_moves``
  (the return move included) and ``release`` are the coordinator's own timings, so each move's
  and the release's broker round trip count as printer time; the release (the bridge lowers the
  head and restores its modes) is printer time. ``camera`` is the camera's own capture time:
  capture request seen on the wire -> the camera's answer seen on the wire (its two MQTT legs
  and the 640x480 render + encode included; the coordinator's legs are not). So the overhead
  is the coordinator's own work plus its side of the 9 capture round trips.
* **coordinator's turns on the wire**: the sum of the 20 gaps in which the coordinator holds
  the ball, its two MQTT legs of every step included (moves too).
* the coordinator's ``timings.overhead`` field: ``hold_duration - (waiting_for_moves + settle +
  capture + release)``. Storing the images is in it; the coordinator's own decisions and
  publishing mostly are not (its clock is read before each decision, so they are booked into
  the next move or capture).

The floor, side by side: a bare paho request/response round trip (bench/rtt.py's ``BarePair``)
through the same broker, in blocks before and after each print (OctoPrint idle) and between
holds (OctoPrint printing), times the 20 round trips a 3x3 hold needs (9 moves, 9 captures,
the return move, the release). Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/coordinator_overhead.py [--prints 3] [--every 1] [--speed 1000] [--quick]
                                                   [--captures-dir DIR] [--wait-quiet S] [--keep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _coordinator import (
    REPO,
    MachineLoad,
    Wire,
    cpu_seconds,
    machine_facts,
    memory_kb,
    p50_p99,
    percentile,
    start_agent,
    stop,
    stop_on_sigterm,
    wait_quiet,
)
from rtt import BarePair

from printmesh_core.models.coordinator import LayerCapture
from printmesh_devkit.broker import LocalBroker
from printmesh_devkit.virtual_octoprint import OctoPrint, start_octoprint

PRINTER, CAM, COORD = "benchprinter", "benchcam", "benchcoord"
P = f"printmesh/{PRINTER}/printer"
GCODE = REPO / "examples" / "sample-box.gcode"
LAYERS = 30
ROUND_TRIPS = 20  # 9 moves + 9 captures + the return move + the release


# ------------------------------------------------------------------ wire analysis
@dataclass
class Step:
    kind: str  # move, return, capture, release
    sent: int  # ns, request seen on the wire
    answered: int | None = None  # ns, answer seen on the wire
    data: dict[str, Any] | None = None  # the answer's data


@dataclass
class HoldWire:
    hold_id: int
    held: int  # ns, the 'held' event seen on the wire
    steps: list[Step] = field(default_factory=list)
    status_updates: int = 0  # retained hold status messages from the bridge during the hold
    state_updates: int = 0  # the coordinator's retained state messages during the hold

    @property
    def end(self) -> int | None:
        last = self.steps[-1] if self.steps else None
        return last.answered if last is not None and last.kind == "release" else None

    def busy(self, *kinds: str) -> float:
        return sum((s.answered - s.sent) / 1e9 for s in self.steps if s.kind in kinds and s.answered is not None)

    def gaps(self) -> list[tuple[str, float]]:
        """(what, seconds) of each turn of the coordinator: from the ball coming back to its next request."""
        out, back, before = [], self.held, "held"
        for step in self.steps:
            out.append((f"{before} -> {step.kind}", (step.sent - back) / 1e9))
            if step.answered is None:
                break
            back, before = step.answered, f"{step.kind} answered"
        return out


def analyse(messages: list[tuple[int, str, bytes]]) -> dict[int, HoldWire]:
    requests: dict[str, Step] = {}
    holds: dict[int, HoldWire] = {}
    current: HoldWire | None = None
    for t, topic, payload in messages:
        if not payload:
            continue
        if topic in (f"{P}/event", f"{P}/held"):
            doc = json.loads(payload)
            if doc.get("event") == "held":
                # the bridge publishes it on its event stream, then alone on printer/held, which the
                # coordinator takes it from (a shared subscription): the hold starts there for it
                hold_id = int(doc["payload"]["hold_id"])
                if hold_id not in holds:
                    current = holds[hold_id] = HoldWire(hold_id, t)
                if topic == f"{P}/held":
                    holds[hold_id].held = t
        elif topic.startswith(f"{P}/cmd/") or topic == f"printmesh/{CAM}/camera/cmd/capture":
            doc = json.loads(payload)
            name = topic.rsplit("/", 1)[1]
            if name == "move" and "z" not in doc:
                name = "return"  # the way back over the origin: X/Y only
            if name == "hold" or current is None or current.end is not None:
                continue
            step = Step(name, t)
            requests[doc["id"]] = step
            current.steps.append(step)
        elif topic.startswith(f"printmesh/reply/{COORD}-coordinator/"):
            doc = json.loads(payload)
            step = requests.get(doc.get("id") or "")
            if step is not None and step.answered is None:
                step.answered, step.data = t, doc.get("data")
                step.data = {**(step.data or {}), "_ts": doc.get("ts")}
        elif topic == f"{P}/hold" and current is not None and current.end is None:
            current.status_updates += 1
        elif topic == f"printmesh/{COORD}/coordinator/{PRINTER}/state" and current is not None and current.end is None:
            current.state_updates += 1
    return holds


def captures(messages: list[tuple[int, str, bytes]]) -> dict[int, LayerCapture]:
    out = {}
    for _, topic, payload in messages:
        if topic == f"printmesh/{COORD}/coordinator/{PRINTER}/capture" and payload:
            md = LayerCapture.model_validate_json(payload)
            out[md.hold_id] = md
    return out


# ------------------------------------------------------------------ the run
def wait_for(wire: Wire, test: Callable[[str, bytes], bool], after: int, timeout: float, what: str) -> int:
    """The index of the first message from ``after`` on that passes ``test``."""
    deadline = time.monotonic() + timeout
    seen = after
    while time.monotonic() < deadline:
        messages = wire.messages
        while seen < len(messages):
            _, topic, payload = messages[seen]
            seen += 1
            if test(topic, payload):
                return seen - 1
        time.sleep(0.005)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def is_event(name: str) -> Callable[[str, bytes], bool]:
    return lambda topic, payload: topic == f"{P}/event" and json.loads(payload).get("event") == name


def armed(topic: str, payload: bytes) -> bool:
    return topic == f"{P}/hold" and bool(payload) and json.loads(payload).get("armed") is not None


def rtt_block(bare: BarePair, n: int, out: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter_ns()
        bare.call()
        out.append((time.perf_counter_ns() - t0) / 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prints", type=int, default=3, help="times the 30-layer sample is printed (default 3)")
    parser.add_argument("--every", type=int, default=1, help="capture every N layers (default 1: 30 holds a print)")
    parser.add_argument("--speed", type=int, default=1000, help="M220 feed rate percentage (default 1000)")
    parser.add_argument("--rtt", type=int, default=300, help="bare round trips before and after each print (300)")
    parser.add_argument("--rtt-between", type=int, default=20, help="bare round trips after each hold (20)")
    parser.add_argument("--quick", action="store_true", help="one print, every 3rd layer (10 holds), fewer round trips")
    parser.add_argument(
        "--captures-dir",
        type=Path,
        help="where the coordinator stores (default: in the work folder under the system temp dir; e.g. a folder"
        " under /dev/shm to take the disk out of the store time)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S seconds until the machine is quiet (<= 0.5 cores busy); default 0: do not wait",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, captures)")
    args = parser.parse_args()
    if args.quick:
        args.prints, args.every, args.rtt, args.rtt_between = 1, 3, 100, 10

    stop_on_sigterm()
    venv = Path(os.environ.get("OCTOPRINT_VENV", REPO / ".venv-octoprint"))
    work = Path(tempfile.mkdtemp(prefix="printmesh-coord-bench-"))
    quiet = wait_quiet(args.wait_quiet)
    facts = machine_facts(quiet)
    broker = LocalBroker(kind="mosquitto").start()
    octo: OctoPrint | None = None
    procs: list[Any] = []
    wire: Wire | None = None
    bare: BarePair | None = None
    rtt_idle: list[float] = []
    rtt_between: list[float] = []
    started = time.monotonic()
    load = MachineLoad()
    try:
        mqtt = {"host": broker.host, "port": broker.port}
        octo = start_octoprint(venv, work / "octoprint", {"node_id": PRINTER, "mqtt": mqtt})
        camera = {"name": "bed", "source": {"type": "synthetic", "fps": 0}, "width": 640, "height": 480,
                  "quality": 85, "preview": {"interval": 0}, "health_interval": 0}  # fmt: skip
        procs.append(start_agent("camera", {"node_id": CAM, "camera": {"cameras": [camera]}}, work, broker))
        topics = [f"{P}/event", f"{P}/held", f"{P}/cmd/+", f"{P}/hold", f"printmesh/{CAM}/camera/cmd/capture",
                  f"printmesh/{COORD}/coordinator/#"]  # fmt: skip
        wire = Wire(broker, topics)
        spec = {"node": PRINTER, "plan": {"every": args.every}, "grid": {"size": 3, "spacing": 30}, "settle": 0,
                "cameras": [{"node": CAM, "camera": "bed"}]}  # fmt: skip
        captures_dir = args.captures_dir or work / "captures"
        coord_cfg = {"node_id": COORD, "coordinator": {"captures_dir": str(captures_dir), "printers": [spec]}}
        coordinator = start_agent("coordinator", coord_cfg, work, broker)
        procs.append(coordinator)
        octo.wait_operational(90)
        bare = BarePair(broker.host, broker.port)
        rtt_block(bare, 50, [])  # warm-up
        data = GCODE.read_bytes()
        cpu = 0.0  # the coordinator's CPU seconds while printing (holds and the layers between them)
        ended = 0  # where the last print ended: the bridge drops the plan then, the coordinator re-arms
        for n in range(args.prints):
            if n > 0:  # the bridge dropped the plan at the print's end: wait for the coordinator's new hold request
                ended = wait_for(wire, lambda topic, _: topic == f"{P}/cmd/hold", ended, 60, "the plan re-armed")
            wait_for(wire, armed, ended, 60, "the coordinator's plan armed on the bridge")
            rtt_block(bare, args.rtt, rtt_idle)
            octo.api("POST", "/api/printer/command", {"commands": [f"M220 S{args.speed}"]})
            cpu -= cpu_seconds(coordinator.pid)
            mark = wire.mark()
            octo.upload(GCODE.name, data)
            seen = mark
            expected = len(range(args.every, LAYERS + 1, args.every))
            got = 0
            deadline = time.monotonic() + 60 + 20 * expected
            while got < expected and time.monotonic() < deadline:
                end = len(wire.messages)
                for i in range(seen, end):
                    if wire.messages[i][1] == f"printmesh/{COORD}/coordinator/{PRINTER}/capture":
                        got += 1
                        rtt_block(bare, args.rtt_between, rtt_between)
                seen = end
                time.sleep(0.002)
            ended = wait_for(wire, is_event("PrintDone"), mark, 120, "PrintDone")
            cpu += cpu_seconds(coordinator.pid)
            time.sleep(1.0)  # the job summary, OctoPrint settling
            rtt_block(bare, args.rtt, rtt_idle)
            print(f"# print {n + 1}/{args.prints}: {got} captured layers", file=sys.stderr)
        messages = list(wire.messages)
        memory = memory_kb(coordinator.pid)
    finally:
        if bare is not None:
            bare.close()
        if wire is not None:
            wire.close()
        for proc in reversed(procs):
            stop(proc)
        if octo is not None:
            octo.stop()
        broker.stop()
    elapsed = time.monotonic() - started
    facts += f"\n# {load.describe()}"

    holds = analyse(messages)
    metas = captures(messages)
    report(args, facts, holds, metas, rtt_idle, rtt_between, elapsed)
    print(
        f"coordinator process: {cpu * 1000 / max(1, len(metas)):.1f} ms CPU per held layer while printing"
        f" ({cpu:.2f} s for {len(metas)} holds, the layers between them included); VmRSS"
        f" {memory['VmRSS'] / 1024:.1f} MB, peak {memory['VmHWM'] / 1024:.1f} MB"
    )
    if args.keep:
        print(f"# work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# ------------------------------------------------------------------ the report
def report(
    args: argparse.Namespace,
    facts: str,
    holds: dict[int, HoldWire],
    metas: dict[int, LayerCapture],
    rtt_idle: list[float],
    rtt_between: list[float],
    elapsed: float,
) -> None:
    good = [h for h in holds.values() if h.end is not None and h.hold_id in metas and metas[h.hold_id].complete]
    bad = len(holds) - len(good)
    per: dict[str, list[float]] = {k: [] for k in (
        "hold_duration", "waiting_for_moves", "settle", "capture", "store", "release", "overhead",
        "hold (wire)", "printer (wire)", "camera (wire)", "coordinator (wire)", "camera frame-to-answer",
        "orchestration",
    )}  # fmt: skip
    gaps: dict[str, list[float]] = {}
    status_updates, state_updates = [], []
    for h in good:
        t = metas[h.hold_id].timings
        for name in ("hold_duration", "waiting_for_moves", "settle", "capture", "store", "release", "overhead"):
            per[name].append(getattr(t, name))
        assert h.end is not None
        camera = h.busy("capture")
        turns = h.gaps()
        per["hold (wire)"].append((h.end - h.held) / 1e9)
        per["printer (wire)"].append(h.busy("move", "return", "release"))
        per["camera (wire)"].append(camera)
        per["coordinator (wire)"].append(sum(s for _, s in turns))
        own = [s.data["_ts"] - s.data["timestamp"] for s in h.steps if s.kind == "capture" and s.data]
        per["camera frame-to-answer"].append(sum(own))
        per["orchestration"].append(t.hold_duration - t.waiting_for_moves - t.settle - t.release - camera)
        for what, seconds in turns:
            gaps.setdefault(what, []).append(seconds)
        status_updates.append(h.status_updates)
        state_updates.append(h.state_updates)

    floor_idle = percentile(rtt_idle, 50) * ROUND_TRIPS
    print(
        f"# coordinator_overhead: 3x3 grid (spacing 30 mm), settle 0, every {args.every} layer(s) of"
        f" {GCODE.relative_to(REPO)} ({LAYERS} layers) x {args.prints} print(s), M220 S{args.speed}"
    )
    print(facts)
    print(
        "# real stack on loopback: mosquitto (LocalBroker), octoprint serve + virtual printer + bridge,"
        " printmesh camera (synthetic, unpaced, 640x480 q85), printmesh coordinator; wall time"
        f" {elapsed:.0f} s"
    )
    where = args.captures_dir or Path(tempfile.gettempdir())
    fstype = subprocess.run(["stat", "-f", "-c", "%T", str(where)], capture_output=True, text=True).stdout.strip()
    print(f"# captures stored under {where} ({fstype or '?'}); the coordinator's log level as shipped (INFO)")
    print(f"# holds: {len(holds)} seen, {len(good)} complete with metadata and used, {bad} other")
    used = {h.hold_id for h in good}
    for h in holds.values():
        if h.hold_id in used:
            continue
        md = metas.get(h.hold_id)
        why = "no metadata" if md is None else "; ".join(f"{f.kind}: {f.message}" for f in md.failures) or "incomplete"
        layer = f"layer {md.layer}" if md is not None else "layer ?"
        print(f"#   not used: hold {h.hold_id} ({layer}, {len(h.steps)} requests seen): {why}")
    print()
    print(f"{'per held layer (s -> ms)':<58}{'p50':>8} {'p99':>8}")
    rows = [
        ("hold_duration (coordinator: held in -> release answered)", "hold_duration"),
        ("  waiting_for_moves (9 moves + return, round trips)", "waiting_for_moves"),
        ("  settle", "settle"),
        ("  capture (9 requests -> answer and JPEG in)", "capture"),
        ("  store (writing 9 JPEGs)", "store"),
        ("  release (request -> answer: head down, modes back)", "release"),
        ("  overhead (the coordinator's field)", "overhead"),
        ("hold on the wire (held seen -> release answer seen)", "hold (wire)"),
        ("  printer's turns (10 moves + release)", "printer (wire)"),
        ("  camera's turns (9 captures: its own capture time)", "camera (wire)"),
        ("  coordinator's turns (20 gaps, its MQTT legs included)", "coordinator (wire)"),
        ("camera frame-to-answer, sum of 9 (its answer's ts, 1 ms res.)", "camera frame-to-answer"),
    ]
    for label, key in rows:
        print(f"{label:<58}{p50_p99(per[key])}")
    print()
    print(f"{'floor: bare paho round trip, same broker':<58}{'p50':>8} {'p99':>8}      n")
    print(f"{'  OctoPrint idle (before/after each print)':<58}{p50_p99(rtt_idle, digits=3)} {len(rtt_idle):6d}")
    print(f"{'  between holds (OctoPrint printing)':<58}{p50_p99(rtt_between, digits=3)} {len(rtt_between):6d}")
    print(f"{f'  x {ROUND_TRIPS} round trips a 3x3 hold needs (idle p50)':<58}{floor_idle * 1000:8.2f}")
    print()
    print(f"{'overhead per held layer':<58}{'p50 ms':>8} {'p99 ms':>8} {'p50/floor':>10}")
    for label, key in [
        ("orchestration overhead: hold - (moves+settle+release+camera)", "orchestration"),
        ("coordinator's turns on the wire", "coordinator (wire)"),
        ("the coordinator's timings.overhead field", "overhead"),
    ]:
        print(f"{label:<58}{p50_p99(per[key])} {percentile(per[key], 50) / floor_idle:9.2f}x")
    print()
    print(f"{'the coordinator turns, one gap each (ms)':<58}{'p50':>8} {'p99':>8}      n")
    for what, values in sorted(gaps.items(), key=lambda kv: -len(kv[1])):
        print(f"{'  ' + what:<58}{p50_p99(values, digits=3)} {len(values):6d}")
    ordered = sorted(holds.values(), key=lambda h: h.held)
    layers = [(b.held - a.end) / 1e9 for a, b in itertools.pairwise(ordered) if a.end is not None]
    layers = [v for v in layers if v < 30]  # not across two prints
    print(
        f"  between holds OctoPrint printed the next layer in p50 {percentile(layers, 50) * 1000:.0f} ms;"
        f" bridge hold-status messages per hold p50 {percentile(status_updates, 50):.0f};"
        f" coordinator state messages per hold p50 {percentile(state_updates, 50):.0f}"
    )
    print()
    goal = percentile(per["orchestration"], 50)
    print(f"goal: orchestration overhead p50 <= 30 ms: {'met' if goal <= 0.030 else 'NOT met'} ({goal * 1000:.1f} ms)")


if __name__ == "__main__":
    sys.exit(main())
