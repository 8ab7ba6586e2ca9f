"""One coordinator serving a fleet of 50 printers vs one serving 1 printer, same run: decision
latency, CPU and memory of the coordinator process, and a correctness check.

The printers are message-level fakes on a real mosquitto (``printmesh_devkit.broker.LocalBroker``),
not OctoPrint: one bare paho-mqtt client in this process plays every bridge and every camera.
Each fake printer keeps the retained topics a bridge keeps (status, profile, job, state, hold
status), answers ``hold`` (arming), ``move`` and ``release`` on the MQTT 5 response topic, and
holds on its own schedule: a ``ZChange``, the ``held`` event on the event stream and alone on
``printer/held`` (which coordinators share), then hold status ``held``; ``busy``/``held`` around
every move; ``released``, the answer, then ``idle`` at the release: the real bridge's order.
Its camera (``<printer>/camera/bed``) answers ``capture`` with a JPEG-sized payload on the image
topic, then the answer (size and sha256). After a release the printer "prints" the next layer
for ``--layer-time`` seconds (+-20 %) and holds again. The bench's own CPU is shown too.

Two real ``printmesh coordinator`` processes run all along, both armed: ``solo`` serves 1
printer, ``fleet`` serves ``--printers`` (50); 3x3 grid, settle 0, return to origin. Their
printers are active in alternating windows of ``--duration`` seconds (solo, fleet, solo,
fleet...), each window drained (every hold released and its metadata published) before the
next starts, so machine noise hits both sides alike and only one side loads the machine.

Measured, per side:

* decision latency: from the fake publishing what the coordinator waits for (the ``held``
  event on ``printer/held``; a move's answer; a capture's answer, which follows its JPEG; the return move's
  answer) to the coordinator's next request arriving at the fake. Both ends are timed in this
  process (perf_counter), so it is a full broker round trip plus the coordinator's own work.
* beside it, a bare paho round trip through the same broker every 50 ms during the window
  (bench/rtt.py's ``BarePair``): the floor of any decision under the same load.
* the coordinator's CPU (utime + stime from /proc/<pid>/stat) over the window, as % of one
  core and per hold; its VmRSS at the end of the window and its peak (VmHWM).
* correctness: every hold got exactly one release, 9 moves + the return, 9 captures and one metadata
  message (``<coord>/coordinator/<printer>/capture``) saying ``complete``.

Prints figures and ratios (fleet / solo); asserts nothing.

    .venv/bin/python bench/coordinator_fleet.py [--printers 50] [--duration 60] [--rounds 2]
                                                [--layer-time 5] [--move-time 0.1] [--quick]
                                                [--wait-quiet S] [--samples FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from _coordinator import (
    MachineLoad,
    bare_client,
    cpu_seconds,
    machine_facts,
    memory_kb,
    percentile,
    start_agent,
    stop,
    stop_on_sigterm,
    subscribe,
    threads,
    wait_quiet,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rtt import BarePair

from printmesh_devkit.broker import LocalBroker

ROOT = "printmesh"
PROFILE = {"name": "fake", "model": "fake", "volume": {"width": 200, "depth": 200, "height": 200}}
GRID = {"size": 3, "spacing": 30}
LABELS = ("held -> move", "move answered -> capture", "capture answered -> move", "capture answered -> return",
          "return answered -> release")  # fmt: skip


def now_ts() -> float:
    return round(time.time(), 3)


def dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# ------------------------------------------------------------------ the fake fleet
@dataclass
class HoldRecord:
    side: str
    printer: str
    hold_id: int
    moves: int = 0
    returns: int = 0
    captures: int = 0
    releases: int = 0
    metadata: int = 0
    complete: bool | None = None
    overhead: float | None = None  # the coordinator's timings.overhead field, s
    released_at: float | None = None


@dataclass
class Printer:
    node: str
    side: str
    armed: dict[str, Any] | None = None
    holder: str | None = None
    active: bool = False
    hold: HoldRecord | None = None
    hold_id: int = 0
    layer: int = 0
    expect: str | None = None  # what the coordinator was handed last ("held", "move answered", ...)
    handed: int = 0  # perf_counter_ns when it was handed
    started_at: float = field(default_factory=now_ts)


class Scheduler:
    """Runs callables at given perf_counter times on one thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="fleet-scheduler", daemon=True)
        self._thread.start()

    def at(self, when: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), fn))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0][0] > time.perf_counter()):
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.perf_counter()))
                if self._stopping:
                    return
                _, _, fn = heapq.heappop(self._heap)
            fn()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()


class Fleet:
    """Every fake bridge and camera, on one bare paho client."""

    def __init__(self, broker: LocalBroker, args: argparse.Namespace, sides: dict[str, list[str]]) -> None:
        self.args = args
        self.rng = random.Random(7)
        self.lock = threading.Lock()
        self.printers = {node: Printer(node, side) for side, nodes in sides.items() for node in nodes}
        self.latency: dict[str, dict[str, list[float]]] = {side: {k: [] for k in LABELS} for side in sides}
        self.holds: dict[tuple[str, int], HoldRecord] = {}
        self.samples: list[tuple[str, str, int, float]] = []  # side, step, arrival (perf_counter_ns), latency s
        self.errors: list[str] = []
        self.image = os.urandom(args.image_kb * 1024)
        self.image_sha = hashlib.sha256(self.image).hexdigest()
        self.scheduler = Scheduler()
        self.client = bare_client("bench-fleet", broker)
        self.client.on_message = self._on_message
        subscribe(self.client, [f"{ROOT}/+/printer/cmd/+", f"{ROOT}/+/camera/cmd/capture",
                                f"{ROOT}/+/coordinator/+/capture"])  # fmt: skip
        for p in self.printers.values():
            self._retain_all(p)

    # ------------------------------------------------------------ publishing
    def _pub(self, topic: str, doc: dict[str, Any] | bytes, retain: bool = False, props: Any = None) -> None:
        payload = doc if isinstance(doc, bytes) else dumps(doc)
        self.client.publish(topic, payload, qos=1, retain=retain, properties=props)

    def _retain_all(self, p: Printer) -> None:
        base = f"{ROOT}/{p.node}"
        online = {"ts": now_ts(), "state": "online", "component": "printer", "version": "bench"}
        self._pub(f"{base}/printer/status", online, retain=True)
        self._pub(f"{base}/printer/profile", {"ts": now_ts(), **PROFILE}, retain=True)
        job = {"ts": now_ts(), "file_name": "box.gcode", "file_path": "box.gcode", "started_at": p.started_at}
        self._pub(f"{base}/printer/job", job, retain=True)
        self._state(p, on_hold=False)
        self._hold_status(p, "idle")
        self._pub(f"{base}/camera/status", {**online, "component": "camera"}, retain=True)
        self._pub(f"{base}/camera/bed/availability", {"ts": now_ts(), "state": "online"}, retain=True)

    def _state(self, p: Printer, on_hold: bool) -> None:
        flags = {"operational": True, "printing": True}
        self._pub(f"{ROOT}/{p.node}/printer/state",
                  {"ts": now_ts(), "text": "Printing", "flags": flags, "on_hold": on_hold}, retain=True)  # fmt: skip

    def _hold_status(self, p: Printer, phase: str) -> None:
        hold = p.hold if phase != "idle" else None
        doc = {"ts": now_ts(), "phase": phase, "hold_id": hold.hold_id if hold else None,
               "layer": p.layer if hold else None, "holder": p.holder, "armed": p.armed}  # fmt: skip
        self._pub(f"{ROOT}/{p.node}/printer/hold", doc, retain=True)

    def _event(self, p: Printer, name: str, payload: dict[str, Any], source: str) -> None:
        self._pub(f"{ROOT}/{p.node}/printer/event", {"ts": now_ts(), "event": name, "payload": payload,
                                                      "source": source})  # fmt: skip

    def _reply(self, msg: paho.MQTTMessage, rid: str, data: dict[str, Any]) -> None:
        topic = getattr(msg.properties, "ResponseTopic", None)
        if not topic:
            self.errors.append(f"request {rid} on {msg.topic} has no response topic")
            return
        props = Properties(PacketTypes.PUBLISH)
        correlation = getattr(msg.properties, "CorrelationData", None)
        if correlation:
            props.CorrelationData = correlation
        self._pub(topic, {"ts": now_ts(), "id": rid, "ok": True, "data": data, "error": None}, props=props)

    def _hand(self, p: Printer, what: str) -> None:
        """The coordinator now holds the ball (call with the lock held, right before publishing)."""
        p.expect, p.handed = what, time.perf_counter_ns()

    # ------------------------------------------------------------ holding
    def activate(self, side: str, on: bool) -> None:
        with self.lock:
            nodes = [p for p in self.printers.values() if p.side == side]
            for p in nodes:
                p.active = on
        if on:
            start = time.perf_counter()
            for p in nodes:
                self.scheduler.at(start + self.rng.uniform(0, self.args.layer_time), lambda p=p: self._hold(p))

    def _hold(self, p: Printer) -> None:
        with self.lock:
            if not p.active or p.hold is not None:
                return
            if p.armed is None:
                self.errors.append(f"{p.node}: not armed when a layer began")
                return
            p.hold_id += 1
            p.layer += 1
            p.hold = HoldRecord(p.side, p.node, p.hold_id)
            self.holds[(p.node, p.hold_id)] = p.hold
            z = round(0.2 * p.layer, 3)
            self._event(p, "ZChange", {"new": z, "old": round(z - 0.2, 3)}, "octoprint")
            body = {"hold_id": p.hold_id, "layer": p.layer, "z": z, "origin": {"x": 20.0, "y": 30.0, "z": z},
                    "path": "box.gcode", "started_at": p.started_at}  # fmt: skip
            held = dumps({"ts": now_ts(), "event": "held", "payload": body, "source": "printmesh"})
            self._pub(f"{ROOT}/{p.node}/printer/event", held)
            self._hand(p, "held")  # then alone on its own topic, as the bridge does: coordinators share that one
            self._pub(f"{ROOT}/{p.node}/printer/held", held)
            self._hold_status(p, "held")  # as the bridge: its actions (event, answer) first, then its status
            self._state(p, on_hold=True)

    def _next_layer(self, p: Printer) -> None:
        if p.active:
            delay = self.args.layer_time * self.rng.uniform(0.8, 1.2)
            self.scheduler.at(time.perf_counter() + delay, lambda: self._hold(p))

    def in_flight(self, side: str) -> int:
        with self.lock:
            waiting = [h for h in self.holds.values() if h.side == side and (h.releases == 0 or h.metadata == 0)]
            return len(waiting)

    # ------------------------------------------------------------ requests
    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        arrived = time.perf_counter_ns()
        parts = msg.topic.split("/")
        if parts[2] == "coordinator":
            self._metadata(msg.payload)
            return
        p = self.printers.get(parts[1])
        if p is None:
            return
        doc = json.loads(msg.payload)
        rid = doc["id"]
        kind = parts[-1]
        if kind == "move" and "z" not in doc:
            kind = "return"
        with self.lock:
            if p.expect is not None and kind != "hold":
                label = f"{p.expect} -> {kind}"
                if label in self.latency[p.side]:
                    self.latency[p.side][label].append((arrived - p.handed) / 1e9)
                    self.samples.append((p.side, label, arrived, (arrived - p.handed) / 1e9))
                else:
                    self.errors.append(f"{p.node}: unexpected {label}")
                p.expect = None
            if kind == "hold":
                p.armed, p.holder = doc["plan"], doc["holder"]
                self._hold_status(p, "idle" if p.hold is None else "held")
                self._reply(msg, rid, {"armed": p.armed})
                return
            hold = p.hold
            if hold is None:
                self.errors.append(f"{p.node}: {kind} {rid} without a hold")
                self._reply(msg, rid, {"held": False})
                return
            if kind in ("move", "return"):
                if kind == "move":
                    hold.moves += 1
                else:
                    hold.returns += 1
                self._hold_status(p, "busy")
        if kind in ("move", "return"):
            position = {"x": doc["x"], "y": doc["y"], "z": doc.get("z", 0.0)}
            data = {"hold_id": hold.hold_id, "layer": p.layer, "position": position}
            self.scheduler.at(time.perf_counter() + self.args.move_time, lambda: self._moved(p, msg, rid, kind, data))
        elif kind == "capture":
            self.scheduler.at(time.perf_counter() + self.args.capture_time, lambda: self._captured(p, msg, doc))
        elif kind == "release":
            self._release(p, msg, rid)

    def _moved(self, p: Printer, msg: paho.MQTTMessage, rid: str, kind: str, data: dict[str, Any]) -> None:
        with self.lock:
            self._hand(p, f"{kind} answered")
            self._reply(msg, rid, data)
            self._hold_status(p, "held")

    def _captured(self, p: Printer, msg: paho.MQTTMessage, doc: dict[str, Any]) -> None:
        rid = doc["id"]
        topic = f"{ROOT}/{p.node}/camera/bed/capture/{rid}"
        self._pub(topic, self.image)
        result = {"capture_id": rid, "request_id": rid, "camera": "bed", "topic": topic, "timestamp": now_ts(),
                  "width": 640, "height": 480, "size": len(self.image), "sha256": self.image_sha, "quality": 85,
                  "label": doc.get("label"), "source": "fake"}  # fmt: skip
        with self.lock:
            if p.hold is not None:
                p.hold.captures += 1
            self._hand(p, "capture answered")
            self._reply(msg, rid, result)

    def _release(self, p: Printer, msg: paho.MQTTMessage, rid: str) -> None:
        with self.lock:
            hold = p.hold
            assert hold is not None
            hold.releases += 1
            hold.released_at = time.perf_counter()
            p.hold = None
            data = {"hold_id": hold.hold_id, "layer": p.layer, "reason": "requested", "returned": True, "error": None}
            self._event(p, "released", data, "printmesh")
            self._reply(msg, rid, data)
            self._hold_status(p, "idle")
            self._state(p, on_hold=False)
            self._next_layer(p)

    def _metadata(self, payload: bytes) -> None:
        if not payload:
            return
        doc = json.loads(payload)
        with self.lock:
            hold = self.holds.get((doc["printer"], doc["hold_id"]))
            if hold is None:
                self.errors.append(f"metadata for an unknown hold {doc['printer']}/{doc['hold_id']}")
                return
            hold.metadata += 1
            hold.complete = doc["complete"]
            hold.overhead = doc["timings"]["overhead"]

    def close(self) -> None:
        self.scheduler.stop()
        self.client.disconnect()
        self.client.loop_stop()


# ------------------------------------------------------------------ the run
@dataclass
class Window:
    side: str
    wall: float
    cpu: float
    holds: int
    rss_kb: int
    hwm_kb: int
    threads: int
    broker_cpu: float
    bench_cpu: float  # this process: the fake fleet, the bare round trips
    rtt: list[float]


def armed_all(fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with fleet.lock:
            missing = [p.node for p in fleet.printers.values() if p.armed is None]
        if not missing:
            return
        time.sleep(0.1)
    raise SystemExit(f"not armed within {timeout:g} s: {', '.join(missing[:5])}...")


def run_window(fleet: Fleet, side: str, pid: int, broker_pid: int | None, bare: BarePair, duration: float) -> Window:
    rtt: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.wait(0.05):
            t0 = time.perf_counter_ns()
            bare.call()
            rtt.append((time.perf_counter_ns() - t0) / 1e9)

    before = len([h for h in fleet.holds.values() if h.side == side])
    b0 = cpu_seconds(broker_pid) if broker_pid else 0.0
    me0 = time.process_time()
    t0, c0 = time.perf_counter(), cpu_seconds(pid)
    prober = threading.Thread(target=probe, name="bench-rtt", daemon=True)
    prober.start()
    fleet.activate(side, True)
    time.sleep(duration)
    fleet.activate(side, False)
    deadline = time.monotonic() + 120
    while fleet.in_flight(side) and time.monotonic() < deadline:
        time.sleep(0.05)
    t1, c1 = time.perf_counter(), cpu_seconds(pid)
    done.set()
    prober.join()
    b1 = cpu_seconds(broker_pid) if broker_pid else 0.0
    me = time.process_time() - me0
    mem = memory_kb(pid)
    holds = len([h for h in fleet.holds.values() if h.side == side]) - before
    return Window(side, t1 - t0, c1 - c0, holds, mem["VmRSS"], mem["VmHWM"], threads(pid), b1 - b0, me, rtt)


def printer_spec(node: str) -> dict[str, Any]:
    return {"node": node, "plan": {"every": 1}, "grid": GRID, "settle": 0, "cameras": [{"node": node, "camera": "bed"}]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--printers", type=int, default=50, help="printers served by the fleet coordinator (50)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of holds per window (60)")
    parser.add_argument("--rounds", type=int, default=2, help="solo+fleet window pairs (2)")
    parser.add_argument("--layer-time", type=float, default=5.0, help="s from a release to the next hold, +-20%% (5)")
    parser.add_argument("--move-time", type=float, default=0.1, help="s a fake move takes (0.1)")
    parser.add_argument("--capture-time", type=float, default=0.01, help="s a fake capture takes (0.01)")
    parser.add_argument("--image-kb", type=int, default=40, help="size of the fake JPEG, KiB (40)")
    parser.add_argument("--quick", action="store_true", help="one round of 15 s windows")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S seconds until the machine is quiet (<= 0.5 cores busy); default 0: do not wait",
    )
    parser.add_argument("--samples", type=Path, help="write every timed decision here (JSON lines), for a closer look")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, captures)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 15.0, 1

    stop_on_sigterm()
    sides = {"solo": ["solo00"], "fleet": [f"fleet{i:02d}" for i in range(args.printers)]}
    work = Path(tempfile.mkdtemp(prefix="printmesh-fleet-bench-"))
    quiet = wait_quiet(args.wait_quiet)
    facts = machine_facts(quiet)
    broker = LocalBroker(kind="mosquitto").start()
    broker_proc = getattr(broker, "_proc", None)
    broker_pid = broker_proc.pid if broker_proc is not None else None
    coords: dict[str, Any] = {}
    fleet: Fleet | None = None
    bare: BarePair | None = None
    windows: list[Window] = []
    exits: dict[str, int | None] = {}
    idle_cpu: dict[str, float] = {}
    started = time.monotonic()
    load = MachineLoad()
    try:
        fleet = Fleet(broker, args, sides)
        for side, nodes in sides.items():
            section = {"captures_dir": str(work / "captures" / side), "printers": [printer_spec(n) for n in nodes]}
            config = {"node_id": f"coord-{side}", "coordinator": section}
            coords[side] = start_agent("coordinator", config, work, broker, name=f"coordinator-{side}")
        armed_all(fleet, 60)
        bare = BarePair(broker.host, broker.port)
        for _ in range(50):
            bare.call()
        time.sleep(2.0)  # start-up work done
        idle = {side: (cpu_seconds(proc.pid), time.perf_counter()) for side, proc in coords.items()}
        time.sleep(5.0)
        for side, (c, t) in idle.items():
            idle_cpu[side] = (cpu_seconds(coords[side].pid) - c) / (time.perf_counter() - t)
        for r in range(args.rounds):
            for side in sides:
                windows.append(run_window(fleet, side, coords[side].pid, broker_pid, bare, args.duration))
                w = windows[-1]
                print(f"# round {r + 1} {side}: {w.holds} holds in {w.wall:.1f} s", file=sys.stderr)
    finally:
        if bare is not None:
            bare.close()
        for side, proc in coords.items():
            exits[side] = stop(proc)
        if fleet is not None:
            fleet.close()
        broker.stop()
    assert fleet is not None
    facts += f"\n# {load.describe()}"
    report(args, facts, sides, fleet, windows, idle_cpu, exits, time.monotonic() - started)
    if args.samples is not None:
        t0 = min((s[2] for s in fleet.samples), default=0)
        with args.samples.open("w") as out:
            for side, label, arrived, latency in fleet.samples:
                out.write(
                    json.dumps({"side": side, "step": label, "t": (arrived - t0) / 1e9, "latency": latency}) + "\n"
                )
    if args.keep:
        print(f"# work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# ------------------------------------------------------------------ the report
def ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


def report(
    args: argparse.Namespace,
    facts: str,
    sides: dict[str, list[str]],
    fleet: Fleet,
    windows: list[Window],
    idle_cpu: dict[str, float],
    exits: dict[str, int | None],
    elapsed: float,
) -> None:
    print(
        f"# coordinator_fleet: 1 coordinator x {args.printers} fake printers vs 1 coordinator x 1, 3x3 grid, settle 0;"
        f" {args.rounds} round(s) of {args.duration:g} s windows"
    )
    print(facts)
    print(
        f"# fakes: next hold {args.layer_time:g} s (+-20 %) after each release, moves {args.move_time * 1000:g} ms,"
        f" captures {args.capture_time * 1000:g} ms, JPEG {args.image_kb} KiB; wall time {elapsed:.0f} s"
    )
    print()
    stats: dict[str, dict[str, float]] = {}
    all_latency: dict[str, list[float]] = {}
    for side in sides:
        ws = [w for w in windows if w.side == side]
        wall, cpu, holds = sum(w.wall for w in ws), sum(w.cpu for w in ws), sum(w.holds for w in ws)
        lat = [v for values in fleet.latency[side].values() for v in values]
        all_latency[side] = lat
        rtt = [v for w in ws for v in w.rtt]
        stats[side] = {
            "printers": len(sides[side]), "holds": holds, "rate": holds / wall, "cpu_pct": cpu / wall * 100,
            "cpu_hold": cpu / holds * 1000 if holds else float("nan"), "idle_pct": idle_cpu[side] * 100,
            "rss": max(w.rss_kb for w in ws) / 1024, "hwm": max(w.hwm_kb for w in ws) / 1024,
            "threads": max(w.threads for w in ws), "broker_pct": sum(w.broker_cpu for w in ws) / wall * 100,
            "bench_pct": sum(w.bench_cpu for w in ws) / wall * 100,
            "lat50": ms(lat, 50), "lat99": ms(lat, 99), "latmax": ms(lat, 100), "decisions": len(lat),
            "rtt50": ms(rtt, 50), "rtt99": ms(rtt, 99),
            "ovh50": ms([h.overhead for h in fleet.holds.values() if h.side == side and h.overhead is not None], 50),
        }  # fmt: skip
    rows = [
        ("printers served", "printers", "{:.0f}"),
        ("holds handled (all windows)", "holds", "{:.0f}"),
        ("holds per second", "rate", "{:.2f}"),
        ("decisions timed", "decisions", "{:.0f}"),
        ("decision latency p50, ms", "lat50", "{:.2f}"),
        ("decision latency p99, ms", "lat99", "{:.2f}"),
        ("decision latency max, ms", "latmax", "{:.1f}"),
        ("its timings.overhead field (store incl.) p50, ms", "ovh50", "{:.1f}"),
        ("bare round trip beside it p50, ms", "rtt50", "{:.3f}"),
        ("bare round trip beside it p99, ms", "rtt99", "{:.3f}"),
        ("coordinator CPU, % of one core", "cpu_pct", "{:.1f}"),
        ("coordinator CPU per hold, ms", "cpu_hold", "{:.1f}"),
        ("coordinator CPU idle (armed, no holds), % core", "idle_pct", "{:.2f}"),
        ("coordinator VmRSS at window end, MB", "rss", "{:.1f}"),
        ("coordinator VmHWM (peak), MB", "hwm", "{:.1f}"),
        ("coordinator threads", "threads", "{:.0f}"),
        ("mosquitto CPU, % of one core", "broker_pct", "{:.1f}"),
        ("the fakes' process (this one) CPU, % of one core", "bench_pct", "{:.1f}"),
    ]
    print(f"{'':<48}{'solo':>10}{'fleet':>10}{'fleet/solo':>12}")
    for label, key, fmt in rows:
        a, b = stats["solo"][key], stats["fleet"][key]
        ratio = f"{b / a:.2f}x" if a else "-"
        print(f"{label:<48}{fmt.format(a):>10}{fmt.format(b):>10}{ratio:>12}")
    print()
    print(f"{'decision latency by step, ms (p50 / p99)':<48}{'solo':>17}{'fleet':>17}")
    for label in LABELS:
        s, f = fleet.latency["solo"][label], fleet.latency["fleet"][label]
        print(f"{'  ' + label:<48}{ms(s, 50):8.2f} {ms(s, 99):8.2f}{ms(f, 50):8.2f} {ms(f, 99):8.2f}")
    print()
    # correctness
    problems: list[str] = list(fleet.errors)
    for h in fleet.holds.values():
        if h.releases != 1:
            problems.append(f"{h.printer} hold {h.hold_id}: {h.releases} releases")
        if h.moves != 9 or h.returns != 1 or h.captures != 9:
            problems.append(
                f"{h.printer} hold {h.hold_id}: {h.moves} moves, {h.returns} returns, {h.captures} captures"
            )
        if h.metadata != 1 or not h.complete:
            problems.append(f"{h.printer} hold {h.hold_id}: {h.metadata} metadata messages, complete={h.complete}")
    total = len(fleet.holds)
    once = sum(1 for h in fleet.holds.values() if h.releases == 1)
    print(
        f"correctness: {total} holds, {once} released exactly once, "
        f"{sum(1 for h in fleet.holds.values() if h.complete)} complete; coordinator exit codes after SIGTERM: "
        + ", ".join(f"{side} {code}" for side, code in exits.items())
    )
    for line in problems[:20]:
        print(f"  PROBLEM: {line}")
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more")
    if not problems:
        print("  every hold: one release, 9 moves + the return, 9 captures, one complete metadata message")
    per_printer = stats["fleet"]["cpu_hold"] / stats["solo"]["cpu_hold"]
    print(f"CPU per hold fleet/solo: {per_printer:.2f}x (1.00x: the coordinator's cost grows with holds, not printers)")


if __name__ == "__main__":
    sys.exit(main())
