"""Coordinators serving 1, 50 and 200 printers, and 200 printers over 4 coordinators, in one run:
decision latency beside the broker's own round trip, CPU per hold, memory, and a correctness check.

The printers are message-level fakes on a real mosquitto (``printmesh_devkit.broker.LocalBroker``),
not OctoPrint: one bare paho-mqtt client in this process plays every bridge and every camera.
Each fake printer keeps the retained topics a bridge keeps (status, profile, job, state, hold
status), answers ``hold`` (arming), ``move`` and ``release`` on the MQTT 5 response topic, and
holds on its own schedule: a ``ZChange``, the ``held`` event on the event stream and alone on
``printer/held`` (which coordinators share), then hold status ``held``; ``busy``/``held`` around
every move; ``released``, the answer, then ``idle`` at the release: the real bridge's order.
Its camera (``<printer>/camera/bed``) answers ``capture`` with a JPEG-sized payload on the image
topic, then the answer (size and sha256). After a release the printer "prints" the next layer
for ``--layer-time`` seconds (+-20 %) and holds again (``--solo-layer-time`` for a 1-printer arm,
so that it holds often enough in a window to be measured). The bench's own CPU is shown too.

Arms (``--sides``, default ``1,50,200,4x50``): ``N`` is one real ``printmesh coordinator`` serving
N printers; ``CxN`` is C coordinators with N printers each, a separate printer set per coordinator
given in its config (so the arm measures the load split, not the ownership protocol, which
tests/integration/test_coordinator_owners.py covers). Every
coordinator runs all along, armed, 3x3 grid, settle 0, return to origin; the arms' printers
are active in turn in windows of ``--duration`` seconds, the order rotated every round, each
window drained (every hold released and its metadata published) before the next starts, so
machine noise hits every arm alike and only one arm loads the machine at a time.

Measured, per arm:

* decision latency: from the fake publishing what the coordinator waits for (the ``held``
  event on ``printer/held``; a move's answer; a capture's answer, which follows its JPEG; the
  return move's answer) to the coordinator's next request arriving at the fake. Both ends are
  timed in this process (perf_counter), so it is a full broker round trip plus the
  coordinator's own work.
* beside it, a bare paho round trip through the same broker every 50 ms during the window
  (bench/rtt.py's ``BarePair``): the floor of any decision under the same load.
* the coordinators' CPU (every thread's ``schedstat`` run time, ns, their helper processes'
  included) over the window, as % of one
  core and per hold, and per hold above idle (minus the arm's idle rate, measured armed with no
  holds for 10 s before the windows); VmRSS at the end of the window and its peak (VmHWM),
  helper processes included.
* correctness: every hold got exactly one release, 9 moves + the return, 9 captures and one
  metadata message (``<coord>/coordinator/<printer>/capture``) saying ``complete``.

Check the ``holds per second`` row: the arms must carry the same load. Until 2026-12-05 an arm
whose two windows ran back to back (with two arms, the second-listed) also started the layers
its previous window had scheduled: 1.35x the holds per second, and in A/A runs (the same code
in both arms) a p99 9-15 ms worse (13.20 against 21.96 ms; 10.70 against 26.09 with the order
swapped). A layer now belongs to the window that scheduled it.

Prints figures, ratios to the first arm, and the issue's goals at 200 printers (p99 decision
latency <= the bare round trip's p99 + 10 ms; CPU per hold above idle <= 1.2x the 1-printer
arm's). Exits 1 when a hold was not handled exactly as planned.

    .venv/bin/python bench/coordinator_fleet.py [--sides 1,50,200,4x50] [--duration 45] [--rounds 2]
                                                [--layer-time 20] [--solo-layer-time 2] [--quick]
                                                [--wait-quiet S] [--samples FILE]
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from _coordinator import (
    MachineLoad,
    bare_client,
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
    window: int = 0  # activations so far: a layer scheduled in an earlier window is not started in a later one
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
        self.layer_time = {side: args.solo_layer_time if len(nodes) == 1 else args.layer_time
                           for side, nodes in sides.items()}  # fmt: skip
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
                p.window += 1
        if on:
            start = time.perf_counter()
            for p in nodes:
                self.scheduler.at(start + self.rng.uniform(0, self.layer_time[side]),
                                  lambda p=p, w=p.window: self._hold(p, w))  # fmt: skip

    def _hold(self, p: Printer, window: int) -> None:
        """``window``: the activation that scheduled this layer. Without it, an arm whose two windows ran
        back to back (two arms, the second round's first) started both its new layers and the ones its
        last window had scheduled: 1.35x the holds per second of the other arm, and a p99 10-15 ms worse,
        read for two rounds as the code's (bench/RESULTS.md, "first-arm bias")."""
        with self.lock:
            if not p.active or p.hold is not None or window != p.window:
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
            delay = self.layer_time[p.side] * self.rng.uniform(0.8, 1.2)
            window = p.window
            self.scheduler.at(time.perf_counter() + delay, lambda: self._hold(p, window))

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
class Side:
    """One arm of the run: its coordinators (name -> the printers each serves) and their printers."""

    name: str
    coordinators: dict[str, list[str]]
    base: bool = False  # its coordinators run --base-code (an older commit), measured beside this one

    @property
    def nodes(self) -> list[str]:
        return [n for nodes in self.coordinators.values() for n in nodes]


def make_sides(spec: str) -> list[Side]:
    """``1,50,200,4x50``: N printers on one coordinator, or CxN: C coordinators of N printers each
    (separate printer sets, one per coordinator, given in each one's config); ``200@base``: the
    same with the coordinators importing ``--base-code``."""
    sides: list[Side] = []
    for word in spec.split(","):
        name = word.strip()
        size, _, code = name.partition("@")
        count, _, per = size.partition("x")
        coords, printers = (int(count), int(per)) if per else (1, int(count))
        prefix = f"s{size}{code}"
        sides.append(Side(name, {f"{prefix}c{c}": [f"{prefix}p{c * printers + i:03d}" for i in range(printers)]
                                  for c in range(coords)}, base=bool(code)))  # fmt: skip
    return sides


@contextlib.contextmanager
def code_path(paths: str | None) -> Iterator[None]:
    """Processes started inside import the product code from ``paths`` first (PYTHONPATH)."""
    old = os.environ.get("PYTHONPATH")
    if paths:
        os.environ["PYTHONPATH"] = paths
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def family(pid: int) -> list[int]:
    """A coordinator and its helper processes (the print watch's and the job pages'), and theirs."""
    out, i = [pid], 0
    while i < len(out):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{out[i]}/task"):
                with contextlib.suppress(OSError, ValueError):
                    out += [int(c) for c in Path(f"/proc/{out[i]}/task/{task}/children").read_text().split()]
        i += 1
    return out


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of a process and of its helper processes, ns (/proc/<pid>/task/*/schedstat:
    no 10 ms clock ticks). The helpers count: the coordinator's work moved there is still its work."""
    total = 0
    for member in family(pid):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{member}/task"):
                with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that just ended
                    total += int(Path(f"/proc/{member}/task/{task}/schedstat").read_text().split()[0])
    return total


def set_cpus(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` (the affinity is per thread; the threads and processes they start inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task), cpus)


def pin(coordinators: list[int], broker_pid: int | None) -> str:
    """``--pin``: the coordinators (with their helpers) on the last CPU, the fakes and the broker on the others.

    It keeps the fleet of fakes, which is not part of the coordinator's machine in a real farm, off
    the coordinator's CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "\n# not pinned: one CPU"
    mine, theirs = set(cpus[:-1]), {cpus[-1]}
    for pid in coordinators:
        for member in family(pid):
            with contextlib.suppress(OSError):
                set_cpus(member, theirs)
    set_cpus(os.getpid(), mine)
    if broker_pid is not None:
        set_cpus(broker_pid, mine)
    return f"\n# pinned: the coordinators and their helpers on CPU {cpus[-1]}, the fakes and broker on {sorted(mine)}"


def family_memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a coordinator with its helper processes, summed (the peaks of each, so an upper bound)."""
    out = {"VmRSS": 0, "VmHWM": 0}
    for member in family(pid):
        with contextlib.suppress(OSError):
            mem = memory_kb(member)
            out = {k: out[k] + mem.get(k, 0) for k in out}
    return out


@dataclass
class Window:
    side: str
    wall: float
    cpu: float  # s, the side's coordinators together
    holds: int
    rss_kb: list[int]  # per coordinator
    hwm_kb: list[int]
    threads: int
    broker_cpu: float
    bench_cpu: float  # this process: the fake fleet, the bare round trips
    rtt: list[float]
    load: str  # load average at the window's end


def armed_all(fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with fleet.lock:
            missing = [p.node for p in fleet.printers.values() if p.armed is None]
        if not missing:
            return
        time.sleep(0.1)
    raise SystemExit(f"not armed within {timeout:g} s: {', '.join(missing[:5])}... ({len(missing)})")


def run_window(
    fleet: Fleet, side: str, pids: list[int], broker_pid: int | None, bare: BarePair, duration: float
) -> Window:
    rtt: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.wait(0.05):
            t0 = time.perf_counter_ns()
            bare.call()
            rtt.append((time.perf_counter_ns() - t0) / 1e9)

    before = len([h for h in fleet.holds.values() if h.side == side])
    b0 = cpu_ns(broker_pid) if broker_pid else 0
    me0 = time.process_time()
    t0, c0 = time.perf_counter(), sum(cpu_ns(pid) for pid in pids)
    prober = threading.Thread(target=probe, name="bench-rtt", daemon=True)
    prober.start()
    fleet.activate(side, True)
    time.sleep(duration)
    fleet.activate(side, False)
    deadline = time.monotonic() + 180
    while fleet.in_flight(side) and time.monotonic() < deadline:
        time.sleep(0.05)
    t1, c1 = time.perf_counter(), sum(cpu_ns(pid) for pid in pids)
    done.set()
    prober.join()
    b1 = cpu_ns(broker_pid) if broker_pid else 0
    me = time.process_time() - me0
    mems = [family_memory_kb(pid) for pid in pids]
    holds = len([h for h in fleet.holds.values() if h.side == side]) - before
    return Window(side, t1 - t0, (c1 - c0) / 1e9, holds, [m["VmRSS"] for m in mems], [m["VmHWM"] for m in mems],
                  max(threads(pid) for pid in pids), (b1 - b0) / 1e9, me, rtt,
                  ", ".join(f"{x:.2f}" for x in os.getloadavg()))  # fmt: skip


def printer_spec(node: str) -> dict[str, Any]:
    return {"node": node, "plan": {"every": 1}, "grid": GRID, "settle": 0, "cameras": [{"node": node, "camera": "bed"}]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sides", default="1,50,200,4x50", help="arms: N or CxN printers; N@base: on --base-code")
    parser.add_argument("--base-code", metavar="PATHS", help="PYTHONPATH of the @base arms: an older commit's src")
    parser.add_argument("--duration", type=float, default=45, help="seconds of holds per window (45)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of one window per arm, order rotated (2)")
    parser.add_argument("--layer-time", type=float, default=20.0, help="s from a release to the next hold, +-20%% (20)")
    parser.add_argument("--solo-layer-time", type=float, default=2.0,
                        help="the same for a 1-printer arm, so that it holds often enough to be timed (2)")  # fmt: skip
    parser.add_argument("--move-time", type=float, default=0.1, help="s a fake move takes (0.1)")
    parser.add_argument("--capture-time", type=float, default=0.01, help="s a fake capture takes (0.01)")
    parser.add_argument("--image-kb", type=int, default=40, help="size of the fake JPEG, KiB (40)")
    parser.add_argument("--quick", action="store_true", help="one round of 20 s windows")
    parser.add_argument("--pin", action="store_true",
                        help="coordinators on the last CPU, the fakes and the broker on the others")  # fmt: skip
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
        args.duration, args.rounds = 20.0, 1

    stop_on_sigterm()
    sides = make_sides(args.sides)
    work = Path(tempfile.mkdtemp(prefix="printmesh-fleet-bench-"))
    quiet = wait_quiet(args.wait_quiet)
    facts = machine_facts(quiet)
    if os.environ.get("PYTHONPATH"):  # e.g. an export of an older commit, to measure it beside this one
        facts += f"\n# coordinators import from PYTHONPATH={os.environ['PYTHONPATH']}"
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
        fleet = Fleet(broker, args, {s.name: s.nodes for s in sides})
        for side in sides:
            if side.base and not args.base_code:
                raise SystemExit(f"arm {side.name} needs --base-code")
            for coord, nodes in side.coordinators.items():
                section = {"captures_dir": str(work / "captures" / coord), "printers": [printer_spec(n) for n in nodes]}
                with code_path(args.base_code if side.base else None):
                    coords[coord] = start_agent("coordinator", {"node_id": coord, "coordinator": section}, work,
                                                broker, name=f"coordinator-{coord}")  # fmt: skip
        armed_all(fleet, 120)
        if args.pin:
            facts += pin([coords[c].pid for side in sides for c in side.coordinators], broker_pid)
        bare = BarePair(broker.host, broker.port)
        for _ in range(50):
            bare.call()
        time.sleep(3.0)  # start-up work done

        def idle_rates() -> list[float]:
            """Each arm's CPU over 10 s armed with no holds, in cores."""
            start = [(sum(cpu_ns(coords[c].pid) for c in side.coordinators), time.perf_counter()) for side in sides]
            time.sleep(10.0)
            return [(sum(cpu_ns(coords[c].pid) for c in side.coordinators) - c0) / 1e9 / (time.perf_counter() - t0)
                    for side, (c0, t0) in zip(sides, start, strict=True)]  # fmt: skip

        idle_cpu = {side.name: rate for side, rate in zip(sides, idle_rates(), strict=True)}
        for r in range(args.rounds):
            order = sides[r % len(sides) :] + sides[: r % len(sides)]
            for side in order:
                pids = [coords[c].pid for c in side.coordinators]
                windows.append(run_window(fleet, side.name, pids, broker_pid, bare, args.duration))
                w = windows[-1]
                print(f"# round {r + 1} {side.name}: {w.holds} holds in {w.wall:.1f} s, load {w.load}",
                      file=sys.stderr)  # fmt: skip
        after = idle_rates()  # the lower of before and after: start-up work can spill into the first
        idle_cpu = {side.name: min(idle_cpu[side.name], rate) for side, rate in zip(sides, after, strict=True)}
    finally:
        if bare is not None:
            bare.close()
        for name, proc in coords.items():
            exits[name] = stop(proc)
        if fleet is not None:
            fleet.close()
        broker.stop()
    assert fleet is not None
    facts += f"\n# {load.describe()}"
    ok = report(args, facts, sides, fleet, windows, idle_cpu, exits, time.monotonic() - started)
    if args.samples is not None:
        t0 = min((s[2] for s in fleet.samples), default=0)
        with args.samples.open("w") as out:
            for side_name, label, arrived, latency in fleet.samples:
                out.write(
                    json.dumps({"side": side_name, "step": label, "t": (arrived - t0) / 1e9, "latency": latency}) + "\n"
                )
    if args.keep:
        print(f"# work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


# ------------------------------------------------------------------ the report
def ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


def report(
    args: argparse.Namespace,
    facts: str,
    sides: list[Side],
    fleet: Fleet,
    windows: list[Window],
    idle_cpu: dict[str, float],
    exits: dict[str, int | None],
    elapsed: float,
) -> bool:
    """Prints the figures; True when every hold was handled exactly as planned."""
    names = [s.name for s in sides]
    print(
        f"# coordinator_fleet: arms {', '.join(names)} (N: N printers on one coordinator; CxN: C coordinators"
        f" with N printers each, separate printer sets by config), 3x3 grid, settle 0;"
        f" {args.rounds} round(s) of {args.duration:g} s windows, arms in rotating order"
    )
    print(facts)
    print(
        f"# fakes: next hold {args.layer_time:g} s (1-printer arm: {args.solo_layer_time:g} s) (+-20 %) after each"
        f" release, moves {args.move_time * 1000:g} ms, captures {args.capture_time * 1000:g} ms,"
        f" JPEG {args.image_kb} KiB; wall time {elapsed:.0f} s"
    )
    print("# load average at each window's end: " + "; ".join(f"{w.side} {w.load}" for w in windows))
    print()
    stats: dict[str, dict[str, float]] = {}
    for side in sides:
        ws = [w for w in windows if w.side == side.name]
        wall, cpu, holds = sum(w.wall for w in ws), sum(w.cpu for w in ws), sum(w.holds for w in ws)
        lat = [v for values in fleet.latency[side.name].values() for v in values]
        rtt = [v for w in ws for v in w.rtt]
        net = cpu - idle_cpu[side.name] * wall
        stats[side.name] = {
            "coords": len(side.coordinators), "printers": len(side.nodes), "holds": holds, "rate": holds / wall,
            "cpu_pct": cpu / wall * 100, "cpu_hold": cpu / holds * 1000 if holds else float("nan"),
            "net_hold": net / holds * 1000 if holds else float("nan"), "idle_pct": idle_cpu[side.name] * 100,
            "rss": max(max(w.rss_kb) for w in ws) / 1024, "rss_sum": max(sum(w.rss_kb) for w in ws) / 1024,
            "hwm": max(max(w.hwm_kb) for w in ws) / 1024,
            "threads": max(w.threads for w in ws), "broker_pct": sum(w.broker_cpu for w in ws) / wall * 100,
            "bench_pct": sum(w.bench_cpu for w in ws) / wall * 100,
            "lat50": ms(lat, 50), "lat99": ms(lat, 99), "latmax": ms(lat, 100), "decisions": len(lat),
            "rtt50": ms(rtt, 50), "rtt99": ms(rtt, 99),
            "ovh50": ms([h.overhead for h in fleet.holds.values() if h.side == side.name and h.overhead is not None],
                        50),
        }  # fmt: skip
    rows = [
        ("coordinators", "coords", "{:.0f}"),
        ("printers served", "printers", "{:.0f}"),
        ("holds handled (all windows)", "holds", "{:.0f}"),
        ("holds per second", "rate", "{:.2f}"),
        ("decisions timed", "decisions", "{:.0f}"),
        ("decision latency p50, ms", "lat50", "{:.2f}"),
        ("decision latency p99, ms", "lat99", "{:.2f}"),
        ("decision latency max, ms", "latmax", "{:.1f}"),
        ("bare round trip beside it p50, ms", "rtt50", "{:.3f}"),
        ("bare round trip beside it p99, ms", "rtt99", "{:.3f}"),
        ("its timings.overhead field (store incl.) p50, ms", "ovh50", "{:.1f}"),
        ("coordinator CPU, % of one core (all of the arm's)", "cpu_pct", "{:.1f}"),
        ("coordinator CPU per hold, ms", "cpu_hold", "{:.2f}"),
        ("  the same above idle (minus the idle rate), ms", "net_hold", "{:.2f}"),
        ("coordinator CPU idle (armed, no holds), % core", "idle_pct", "{:.2f}"),
        ("coordinator VmRSS at window end, MB (largest)", "rss", "{:.1f}"),
        ("  the arm's coordinators together, MB", "rss_sum", "{:.1f}"),
        ("coordinator VmHWM (peak), MB (largest)", "hwm", "{:.1f}"),
        ("coordinator threads", "threads", "{:.0f}"),
        ("mosquitto CPU, % of one core", "broker_pct", "{:.1f}"),
        ("the fakes' process (this one) CPU, % of one core", "bench_pct", "{:.1f}"),
    ]
    base = names[0]
    print(f"{'':<52}" + "".join(f"{n:>10}" for n in names) + "".join(f"{n + '/' + base:>12}" for n in names[1:]))
    for label, key, fmt in rows:
        a = stats[base][key]
        values = "".join(f"{fmt.format(stats[n][key]):>10}" for n in names)
        ratios = "".join(f"{(stats[n][key] / a if a else float('nan')):>11.2f}x" for n in names[1:])
        print(f"{label:<52}{values}{ratios}")
    print()
    print(f"{'decision latency by step, ms (p50 / p99)':<40}" + "".join(f"{n:>17}" for n in names))
    for label in LABELS:
        cells = "".join(f"{ms(fleet.latency[n][label], 50):8.2f} {ms(fleet.latency[n][label], 99):8.2f}" for n in names)
        print(f"{'  ' + label:<40}{cells}")
    print()
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
    bad_exit = {name: code for name, code in exits.items() if code != 0}
    print(
        f"correctness: {total} holds, {once} released exactly once, "
        f"{sum(1 for h in fleet.holds.values() if h.complete)} complete; {len(exits)} coordinators, exit codes after"
        f" SIGTERM: " + ("all 0" if not bad_exit else ", ".join(f"{n} {c}" for n, c in bad_exit.items()))
    )
    for side in sides:
        mine = [h for h in fleet.holds.values() if h.side == side.name]
        wrong = [h for h in mine if h.releases != 1 or h.moves != 9 or h.returns != 1 or h.captures != 9
                 or h.metadata != 1 or not h.complete]  # fmt: skip
        print(f"  arm {side.name}: {len(mine)} holds, {len(mine) - len(wrong)} handled exactly as planned")
    for line in problems[:20]:
        print(f"  PROBLEM: {line}")
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more")
    if not problems:
        print("  every hold: one release, 9 moves + the return, 9 captures, one complete metadata message")
    by_name = {side.name: side for side in sides}
    goals = [n for n in names if stats[n]["coords"] == 1 and stats[n]["printers"] >= 200]
    for n in goals:
        s = stats[n]
        one = next((m for m in names if stats[m]["printers"] == 1 and by_name[m].base == by_name[n].base), base)
        lat_ok = s["lat99"] <= s["rtt99"] + 10
        ratio = s["net_hold"] / stats[one]["net_hold"]
        raw = s["cpu_hold"] / stats[one]["cpu_hold"]
        print(f"goal at {n} printers: decision latency p99 {s['lat99']:.2f} ms <= broker round trip p99 beside it"
              f" {s['rtt99']:.2f} + 10 ms: {'met' if lat_ok else 'NOT met'}")  # fmt: skip
        print(f"goal at {n} printers: CPU per hold above idle {ratio:.2f}x the {one} arm's (raw {raw:.2f}x)"
              f" <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'}")  # fmt: skip
    for n in names:
        old = f"{n}@base"
        if old in stats:
            a, b = stats[n], stats[old]
            print(f"this code vs --base-code at {n}: CPU per hold {a['cpu_hold']:.2f} vs {b['cpu_hold']:.2f} ms"
                  f" ({a['cpu_hold'] / b['cpu_hold']:.2f}x); decision latency p50 {a['lat50']:.2f} vs"
                  f" {b['lat50']:.2f} ms, p99 {a['lat99']:.2f} vs {b['lat99']:.2f} ms")  # fmt: skip
    return not problems and not bad_exit


if __name__ == "__main__":
    sys.exit(main())
