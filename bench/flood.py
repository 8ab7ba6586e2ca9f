"""A flood of fake statuses and events: the coordinator's hold times and memory with it and without
it, in one run.

What runs, all on loopback:

* mosquitto (``printmesh_devkit.broker.LocalBroker``);
* the real ``printmesh coordinator`` as a subprocess, serving one printer: 3x3 grid, every layer,
  settle 0, return to origin;
* the printer and its camera are ``coordinator_fleet.py``'s message-level fakes (not OctoPrint: a
  real OctoPrint and its virtual printer print a layer in seconds and add their own noise; the
  fake holds again ``--layer-time`` s after every release and answers moves in ``--move-time``);
* a flooder: one raw MQTT 3.1.1 connection writing pre-encoded QoS 0 PUBLISH packets at
  ``--rate`` messages a second for ``--flood`` seconds (the issue's case: 10 s at 20,000 a second),
  every packet built before the flood begins. ``--own-events`` of them (1/8) are OctoPrint
  ``ZChange`` events on the served printer's own event stream, which any coordinator must read; of
  the rest, half are coordinator statuses with unique node ids (``<fake>/coordinator/status``,
  which main's coordinator subscribed to with a wildcard), a quarter printer statuses and a
  quarter events of unique printers.

The timeline: arming, ``--quiet`` s of holds without a flood (the baseline), ``--flood`` s of
holds with the flood, then until every hold started is released (at most ``--drain`` s), then
``--settle`` s more without a flood (memory after the burst).

Measured, side by side in the one run:

* each hold's time as the printer sees it, by the clock: from publishing ``held`` to receiving the
  coordinator's ``release`` (its waiting behind other work included). Without the flood: the holds
  begun and released in the baseline; with it: every hold that overlaps the flood. Ratio of the
  medians and of the maxima (goal: at most 1.5x).
* the coordinator's RSS (VmRSS from /proc, sampled every 100 ms): the baseline (median over the
  baseline's last 5 s), the peak during the flood and the drain, and after the burst (median over
  the last 5 s of ``--settle``). Ratio after / baseline (goal: at most 1.10).

Prints figures and ratios; asserts nothing. ``bench/ab.py --script-from after`` runs this same file
against another source tree (e.g. main, before the change).

    .venv/bin/python bench/flood.py [--rate 20000] [--flood 10] [--quiet 20] [--settle 15]
                                    [--drain 240] [--layer-time 0.5] [--move-time 0.02] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _coordinator import MachineLoad, cpu_seconds, machine_facts, memory_kb, start_agent, stop, stop_on_sigterm
from coordinator_fleet import Fleet, armed_all, printer_spec

from printmesh_devkit.broker import LocalBroker

ROOT = "printmesh"
PRINTER = "p00"


# ------------------------------------------------------------------ the flooder
def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def publish_packet(topic: str, payload: bytes) -> bytes:
    body = _string(topic) + payload
    return b"\x30" + _remaining(len(body)) + body


class Flooder:
    """One raw MQTT 3.1.1 connection that writes QoS 0 publishes at a fixed rate, in 10 ms batches."""

    def __init__(self, broker: LocalBroker, tag: str, own_events: float) -> None:
        self.tag = tag
        self.own_events = own_events  # share of the messages that are events on the served printer
        self.sock = socket.create_connection((broker.host, broker.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + _string(f"bench-flood-{tag}")
        self.sock.sendall(b"\x10" + _remaining(len(body)) + body)
        if self.sock.recv(4)[:1] != b"\x20":
            raise SystemExit("the flooder was not accepted by the broker")
        self.sent = 0
        self.seconds = 0.0
        self._drain = threading.Thread(target=self._read, daemon=True)  # the broker sends us nothing; be safe
        self._drain.start()

    def _read(self) -> None:
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def message(self, i: int) -> bytes:
        ts = round(time.time(), 3)
        if int((i + 1) * self.own_events) > int(i * self.own_events):  # evenly spread, ``own_events`` of all
            event = {"ts": ts, "event": "ZChange", "payload": {"new": 1.0, "old": 0.8}, "source": "octoprint"}
            return publish_packet(f"{ROOT}/{PRINTER}/printer/event", json.dumps(event).encode())
        kind = i % 4
        if kind < 2:
            status = {"ts": ts, "state": "online", "component": "coordinator", "version": "flood"}
            return publish_packet(f"{ROOT}/fc{self.tag}{i}/coordinator/status", json.dumps(status).encode())
        if kind == 2:
            status = {"ts": ts, "state": "online", "component": "printer", "version": "flood"}
            return publish_packet(f"{ROOT}/fp{self.tag}{i}/printer/status", json.dumps(status).encode())
        event = {"ts": ts, "event": "ZChange", "payload": {"new": 1.0, "old": 0.8}, "source": "octoprint"}
        return publish_packet(f"{ROOT}/fp{self.tag}{i}/printer/event", json.dumps(event).encode())

    def run(self, rate: float, seconds: float, ready: Any = None) -> None:
        """Every packet is built first, so the flood itself costs this process almost nothing."""
        batch_every = 0.01
        total = int(rate * seconds)
        packets = [self.message(i) for i in range(total)]
        if ready is not None:
            ready()
        start = time.perf_counter()
        while self.sent < total:
            elapsed = time.perf_counter() - start
            due = min(total, int((elapsed + batch_every) * rate)) - self.sent
            if due > 0:
                self.sock.sendall(b"".join(packets[self.sent : self.sent + due]))
                self.sent += due
            time.sleep(max(0.0, start + (self.sent / rate) - time.perf_counter()))
        self.seconds = time.perf_counter() - start

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------ the fake printer, timed
class TimedFleet(Fleet):
    """``coordinator_fleet.Fleet`` that also notes when each hold began (perf_counter)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.began: dict[tuple[str, int], float] = {}
        super().__init__(*args, **kwargs)

    def _hold(self, p: Any) -> None:
        t = time.perf_counter()
        super()._hold(p)
        with self.lock:
            if p.hold is not None and (p.node, p.hold.hold_id) not in self.began:
                self.began[(p.node, p.hold.hold_id)] = t

    def hold_times(self, start: float, end: float) -> tuple[list[float], list[float], int]:
        """Hold times: (holds begun and released before ``start``, holds overlapping [start, end) and released,
        holds overlapping it and never released)."""
        before, during, open_ = [], [], 0
        with self.lock:
            for key, began in self.began.items():
                released = self.holds[key].released_at
                if released is not None and released < start:
                    before.append(released - began)
                elif began < end and released is None:
                    open_ += 1
                elif began < end and released is not None:
                    during.append(released - began)
        return before, during, open_

    def unreleased(self) -> int:
        with self.lock:
            return sum(1 for h in self.holds.values() if h.releases == 0)


class Memory:
    """VmRSS of one process every 100 ms, with the time of each sample."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.samples.append((time.perf_counter(), memory_kb(self.pid)["VmRSS"]))
            except (OSError, KeyError):
                return

    def between(self, start: float, end: float) -> list[int]:
        return [kb for t, kb in list(self.samples) if start <= t < end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000


class FloodProcess:
    """The flooder in its own process (it must not take the fake printer's interpreter lock): it
    connects and builds every packet at ``start``, before the baseline, and floods on ``go``."""

    def __init__(self, broker: LocalBroker, rate: float, seconds: float, tag: str, own_events: float) -> None:
        args = [broker.host, str(broker.port), str(rate), str(seconds), tag, str(own_events)]
        self.child = subprocess.Popen(
            [sys.executable, __file__, "--flooder", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.child.stdout is not None
        if self.child.stdout.readline().strip() != "ready":
            raise SystemExit("the flooder did not start")

    def go(self) -> float:
        """Start the flood; returns when it began (perf_counter)."""
        assert self.child.stdin is not None
        self.child.stdin.write("go\n")
        self.child.stdin.flush()
        return time.perf_counter()

    def finish(self) -> tuple[int, float]:
        """Wait for the flood's end: (messages sent, seconds taken)."""
        out, _ = self.child.communicate()
        sent, took = out.split()
        return int(sent), float(took)


def flooder_main(argv: list[str]) -> int:
    host, port, rate, seconds, tag, own_events = argv
    broker: Any = type("B", (), {"host": host, "port": int(port)})()
    flooder = Flooder(broker, tag, float(own_events))
    try:
        flooder.run(float(rate), float(seconds), ready=lambda: (print("ready", flush=True), sys.stdin.readline()))
    finally:
        flooder.close()
    print(flooder.sent, flooder.seconds)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--flooder"]:
        return flooder_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20_000, help="flood messages per second (20000)")
    parser.add_argument("--flood", type=float, default=10, help="seconds of flood (10)")
    parser.add_argument(
        "--own-events", type=float, default=0.125,
        help="share of the flood that is events on the served printer's own event stream (0.125)",
    )  # fmt: skip
    parser.add_argument("--quiet", type=float, default=20, help="seconds of holds without a flood first (20)")
    parser.add_argument("--settle", type=float, default=15, help="seconds without a flood after the drain (15)")
    parser.add_argument("--drain", type=float, default=240, help="s at most to wait for the holds begun (240)")
    parser.add_argument("--layer-time", type=float, default=0.5, help="s from a release to the next hold (0.5)")
    parser.add_argument("--move-time", type=float, default=0.02, help="s a fake move takes (0.02)")
    parser.add_argument("--capture-time", type=float, default=0.01, help="s a fake capture takes (0.01)")
    parser.add_argument("--image-kb", type=int, default=40, help="size of the fake JPEG, KiB (40)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, captures)")
    args = parser.parse_args()

    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="printmesh-flood-bench-"))
    facts = machine_facts()
    load = MachineLoad()
    broker = LocalBroker(kind="mosquitto").start()
    fleet: TimedFleet | None = None
    coord: Any = None
    memory: Memory | None = None
    sent, took = 0, 0.0
    cpu_flood = cpu_drain = broker_cpu = 0.0
    exit_code: int | None = None
    alive = False
    try:
        fleet = TimedFleet(broker, args, {"flood": [PRINTER]})
        section = {"captures_dir": str(work / "captures"), "printers": [printer_spec(PRINTER)], "pages": False}
        coord = start_agent("coordinator", {"node_id": "coord", "coordinator": section}, work, broker)
        armed_all(fleet, 60)
        time.sleep(2.0)  # start-up done
        flood = FloodProcess(broker, args.rate, args.flood, f"{int(time.time()) % 100000}x", args.own_events)
        memory = Memory(coord.pid)
        fleet.activate("flood", True)
        time.sleep(args.quiet)
        cpu0 = cpu_seconds(coord.pid)
        broker_pid = getattr(getattr(broker, "_proc", None), "pid", None)
        broker_cpu0 = cpu_seconds(broker_pid) if broker_pid else 0.0
        t_flood = flood.go()
        sent, took = flood.finish()
        t_flood_end = time.perf_counter()
        cpu_flood = cpu_seconds(coord.pid) - cpu0
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            with fleet.lock:
                began_in_flood = [k for k, t in fleet.began.items() if t < t_flood_end]
                waiting = [k for k in began_in_flood if fleet.holds[k].released_at is None]
            if not waiting:
                break
            time.sleep(0.1)
        t_drained = time.perf_counter()
        cpu_drain = cpu_seconds(coord.pid) - cpu0
        broker_cpu = cpu_seconds(broker_pid) - broker_cpu0 if broker_pid else float("nan")
        time.sleep(args.settle)
        t_end = time.perf_counter()
        fleet.activate("flood", False)
        alive = coord.poll() is None
    finally:
        if memory is not None:
            memory.close()
        if coord is not None:
            exit_code = stop(coord)
        if fleet is not None:
            fleet.close()
        broker.stop()
    assert fleet is not None and memory is not None

    quiet, flood, flood_open = fleet.hold_times(t_flood, t_flood_end)
    baseline = statistics.median(memory.between(t_flood - 5, t_flood) or [0]) / 1024
    peak = max(memory.between(t_flood, t_drained) or [0]) / 1024
    after = statistics.median(memory.between(t_end - 5, t_end) or [0]) / 1024
    print(facts)
    print(f"# {load.describe()}")
    print(f"# flood: {sent} messages in {took:.1f} s ({sent / took:.0f}/s), {args.own_events:.3f} of them events on "
          f"the served printer's stream, of the rest half statuses of unique coordinators; "
          f"drained {t_drained - t_flood_end:.1f} s after the flood")  # fmt: skip
    print(f"# coordinator alive at the end: {alive}, exit code {exit_code}")
    print(f"hold time without flood (ms): n {len(quiet)} p50 {ms(quiet, 50):.1f} p90 {ms(quiet, 90):.1f} "
          f"max {ms(quiet, 100):.1f}")  # fmt: skip
    print(f"hold time with flood (ms): n {len(flood)} p50 {ms(flood, 50):.1f} p90 {ms(flood, 90):.1f} "
          f"max {ms(flood, 100):.1f}")  # fmt: skip
    print(f"holds during the flood never released: {flood_open}")
    p50_ratio = ms(flood, 50) / ms(quiet, 50) if quiet and flood else float("nan")
    max_ratio = ms(flood, 100) / ms(quiet, 100) if quiet and flood else float("nan")
    print(f"hold time flood/no flood: p50 {p50_ratio:.2f}x max {max_ratio:.2f}x (goal: at most 1.5x)")
    print(f"coordinator CPU during the flood: {cpu_flood:.2f} s of {took:.1f} s, until drained {cpu_drain:.2f} s")
    print(f"broker CPU from the flood until drained: {broker_cpu:.2f} s")
    print(f"coordinator RSS (MB): baseline {baseline:.1f} peak {peak:.1f} after {after:.1f}")
    print(f"coordinator RSS after/baseline: {after / baseline:.3f} peak/baseline: {peak / baseline:.3f} "
          f"(goal: after at most 1.10)")  # fmt: skip
    if args.keep:
        print(f"# work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
