"""Print streaming throughput on the virtual printer, with and without the printmesh plugin, same run.

Real ``octoprint serve`` instances (OctoPrint 1.11, virtual printer, serial.log off as
shipped), started side by side from basedirs made like tests/octoprint_harness.py's, one
per variant:

* ``off``   without plugin: printmesh in ``plugins._disabled``, OctoPrint does not load it.
* ``on``    with plugin, connected to a real mosquitto (LocalBroker).
* ``down``  with plugin, pointed at a loopback port where nothing listens (broker down).

Diagnostics, on request (``--variants``): ``nohooks`` (with plugin, its comm hooks taken
out of the running comm: what the background threads cost alone) and ``nozchange`` (with
plugin, ZChange left out of the event stream by the plugin's own ``events.exclude``).

Each server gets the same large real sliced file (PrusaSlicer, cached; heat-up waits made
M117 at the same length) and one warm-up print of a short file, during which the probe
times printmesh's comm hooks where OctoPrint calls them (per call and per file line). Then ``--reps`` rounds
print the variants one at a time in a fixed cycle (off, on, down, off, on, down, ..., off),
so every other print is bracketed by two prints without the plugin: its ratio is taken
against the without-plugin rate interpolated to its midpoint, which cancels the drift of
a shared machine. Before each print ``M220 S1000000`` and ``M221 S1000000`` make the
virtual printer's simulated moves microseconds long, so the comm path is what limits.

The print time is OctoPrint's own: ``Finished in N s.`` in octoprint.log, the same clock
as PrintDone's ``time`` (first file line to last line sent). Nothing polls OctoPrint while
it prints: the bench tails the log file and reads per-thread CPU from /proc (thread names
from a probe plugin installed in every server, which also turns off the virtual printer's
own per-line serial log). OctoPrint is pinned to one CPU, the bench and broker to the
others. A print during which OctoPrint got less than ``--min-cores`` of a CPU, or the
hypervisor stole more than ``--max-steal``, is discarded and printed again. Prints figures
and ratios; asserts nothing.

    .venv/bin/python bench/bridge_throughput.py [--reps 3] [--height 30] [--quick]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from _octoprint import (
    SPEEDUP,
    OctoPrint,
    command_lines,
    large_gcode,
    machine_cpu,
    machine_facts,
    pin_cpus,
    plugin_loaded,
    printable,
    probe_source,
    spread,
    start,
    thread_cpu,
    upload_analysed,
    wait_quiet,
)
from paho.mqtt.enums import CallbackAPIVersion

from printmesh_devkit.broker import LocalBroker, free_port

FINISHED = re.compile(rb"Finished in ([\d.]+) s\.")
OPERATIONAL = re.compile(rb'from "Finishing" to "Operational"')
# threads reported by name in the breakdown; everything else is summed as "other threads"
THREADS = {
    "comm._monitor": "comm._monitor (reads oks)",
    "comm.sending_thread": "comm.sending_thread",
    "octoprint.plugins.virtual_printer.wait_thread": "virtual printer: incoming",
    "octoprint.plugins.virtual_printer.buffer_thread": "virtual printer: moves",
    "printmesh-bridge": "printmesh-bridge worker",
    "paho-mqtt-client-": "printmesh paho thread",
    "printmesh-cmd": "printmesh command pool",
}


@dataclass
class Variant:
    key: str
    label: str
    plugin: bool = True
    broker_up: bool = True
    settings: dict[str, Any] = field(default_factory=dict)  # extra plugin settings
    unhook: list[str] = field(default_factory=list)  # comm hook phases to take out (diagnostics)
    server: OctoPrint | None = None
    times: list[float] = field(default_factory=list)  # OctoPrint's print time, s
    mids: list[float] = field(default_factory=list)  # monotonic midpoint of each print
    cpu: list[float] = field(default_factory=list)  # process CPU s per print
    threads: list[dict[str, float]] = field(default_factory=list)  # label -> CPU s per print
    messages: list[int] = field(default_factory=list)
    topics: list[dict[str, int]] = field(default_factory=list)  # messages per topic, per print
    others: list[float] = field(default_factory=list)  # cores used by the rest of the machine meanwhile
    steal: list[float] = field(default_factory=list)  # cores stolen by the hypervisor meanwhile
    discarded: int = 0

    @property
    def node(self) -> str:
        return f"bench-{self.key}"

    def series(self) -> tuple[list[Any], ...]:
        return self.times, self.mids, self.cpu, self.threads, self.messages, self.topics, self.others, self.steal

    def drop_last(self) -> None:
        for values in self.series():
            values.pop()


VARIANTS = {
    "off": lambda: Variant("off", "without plugin", plugin=False),
    "on": lambda: Variant("on", "with plugin"),
    "down": lambda: Variant("down", "with plugin, broker down", broker_up=False),
    "nohooks": lambda: Variant("nohooks", "with plugin, no comm hooks", unhook=["queuing", "sent", "received"]),
    "nozchange": lambda: Variant(
        "nozchange", "with plugin, no ZChange events", settings={"events": {"exclude": ["PositionUpdate", "ZChange"]}}
    ),
}


class Counter:
    """Counts the broker's messages per node (printmesh/<node>/...)."""

    def __init__(self, host: str, port: int) -> None:
        self.counts: dict[str, int] = {}
        self.topics: dict[str, dict[str, int]] = {}  # node -> topic under the node (+ event name) -> count
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-throughput-counter")
        self.client.on_message = self._on_message
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, reason, p: (c.subscribe("printmesh/#"), connected.set())
        self.client.connect(host, port)
        self.client.loop_start()
        if not connected.wait(10):
            raise SystemExit("counter did not connect to the broker")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        node, rest = parts[1], "/".join(parts[2:])
        if rest.endswith("/event") and msg.payload:  # event messages by event name
            name = re.search(rb'"event":\s*"([^"]+)"', msg.payload)
            rest += f" {name.group(1).decode()}" if name else ""
        with self.lock:
            self.counts[node] = self.counts.get(node, 0) + 1
            by_topic = self.topics.setdefault(node, {})
            by_topic[rest] = by_topic.get(rest, 0) + 1

    def count(self, node: str) -> int:
        with self.lock:
            return self.counts.get(node, 0)

    def by_topic(self, node: str) -> dict[str, int]:
        with self.lock:
            return dict(self.topics.get(node, {}))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def simulated_motion(lines: list[str], percent: float) -> float:
    """Seconds the virtual printer sleeps for the file's moves (virtual.py _performMove:
    per move the largest positive axis delta / F * 60 * 0.1, F scaled by M220/M221 %)."""
    relative, f = True, 200.0
    pos: dict[str, float | None] = dict.fromkeys("XYZE")
    total = 0.0
    for line in lines:
        words = line.split()
        head = words[0]
        if head == "G90":
            relative = False
        elif head == "G91":
            relative = True
        elif head == "G92":
            axes = {w[0]: float(w[1:]) for w in words[1:] if w[0] in "XYZE" and len(w) > 1}
            pos.update(axes or dict.fromkeys("XYZE", 0.0))
        elif head in ("G0", "G1", "G2", "G3"):
            values = {w[0]: w[1:] for w in words[1:] if w[:1] in ("X", "Y", "Z", "E", "F")}
            if "F" in values:
                f = float(values["F"])
            speed = f * percent / 100 or 1e12
            duration = 0.0
            for axis in "XYZE":
                if axis not in values:
                    continue
                value, last = float(values[axis]), pos[axis]
                delta = value if relative or last is None else value - last
                duration = max(duration, delta / speed * 60)
                pos[axis] = last + value if relative and last is not None else value
            total += duration * 0.1
    return total


class LogTail:
    """New lines of a server's octoprint.log since it was made (read from this process:
    nothing touches OctoPrint while it prints). Each match consumes the text up to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.seen = b""

    def wait_for(self, pattern: re.Pattern[bytes], timeout: float) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                self.seen += fh.read()
                self.offset = fh.tell()
            if (m := pattern.search(self.seen)) is not None:
                self.seen = self.seen[m.end() :]
                return m
            time.sleep(0.2)
        raise TimeoutError(f"no {pattern.pattern!r} in {self.path} within {timeout} s")


def thread_labels(server: OctoPrint) -> dict[int, str]:
    names: dict[str, str] = server.api("GET", "/api/plugin/bench_probe")["threads"]
    out = {}
    for tid, name in names.items():
        label = next((v for k, v in THREADS.items() if name.startswith(k)), None)
        if label is not None:
            out[int(tid)] = label
    return out


def print_once(variant: Variant, name: str, counter: Counter, timeout: float) -> tuple[float, float]:
    """One print; returns OctoPrint's print time and the seconds waited for a quiet machine first."""
    server = variant.server
    assert server is not None
    server.api("POST", "/api/printer/command", {"commands": SPEEDUP})
    time.sleep(0.3)
    tail = LogTail(server.basedir / "logs" / "octoprint.log")
    waited = wait_quiet(max_cores=0.5, timeout=20)
    before, machine_before, t0 = thread_cpu(server.proc.pid), machine_cpu(), time.monotonic()
    sent_before, topics_before = counter.count(variant.node), counter.by_topic(variant.node)
    server.api("POST", f"/api/files/local/{name}", {"command": "select", "print": True})
    found = tail.wait_for(FINISHED, timeout)
    tail.wait_for(OPERATIONAL, 30)
    after, machine_after, t1 = thread_cpu(server.proc.pid), machine_cpu(), time.monotonic()
    seconds = float(found.group(1))
    time.sleep(0.5)  # late messages of this print (the final job state)
    labels = thread_labels(server)
    per: dict[str, float] = {}
    for tid, cpu in after.items():
        label = labels.get(tid, "other threads")
        per[label] = per.get(label, 0.0) + cpu - before.get(tid, 0.0)
    own = sum(after.values()) - sum(before.values())
    variant.times.append(seconds)
    variant.mids.append((t0 + t1) / 2)
    variant.cpu.append(own)
    variant.threads.append(per)
    variant.messages.append(counter.count(variant.node) - sent_before)
    topics = counter.by_topic(variant.node)
    variant.topics.append({k: n - topics_before.get(k, 0) for k, n in topics.items() if n > topics_before.get(k, 0)})
    variant.others.append((machine_after[0] - machine_before[0] - own) / (t1 - t0))
    variant.steal.append((machine_after[1] - machine_before[1]) / (t1 - t0))
    return seconds, waited


def bracketed(base: Variant, other: Variant, values: str = "rate") -> list[float]:
    """Each print of ``other`` against ``base`` interpolated (linearly in time) to its midpoint.
    values="rate": lines/s ratio (other/base); values="cpu": CPU per print ratio."""
    points = sorted(zip(base.mids, base.times, base.cpu, strict=True))
    out = []
    for mid, seconds, cpu in zip(other.mids, other.times, other.cpu, strict=True):
        before = [p for p in points if p[0] <= mid]
        after = [p for p in points if p[0] > mid]
        if not before or not after:
            continue
        (m0, t0, c0), (m1, t1, c1) = before[-1], after[0]
        w = (mid - m0) / (m1 - m0)
        if values == "rate":
            out.append((1 / seconds) / ((1 - w) / t0 + w / t1))
        else:
            out.append(cpu / ((1 - w) * c0 + w * c1))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="rounds; each prints every variant once (default 3)")
    parser.add_argument("--height", type=float, default=30.0, help="cylinder height in mm: ~3,800 lines/mm (30)")
    parser.add_argument("--quick", action="store_true", help="a short run: --reps 2 --height 6")
    parser.add_argument(
        "--variants",
        default="off,on,down",
        help=f"comma-separated, the first is the reference (default off,on,down; all: {','.join(VARIANTS)})",
    )
    parser.add_argument(
        "--min-cores",
        type=float,
        default=0.9,
        help="discard a print (and print again) if OctoPrint got less CPU than this while streaming (0.9)",
    )
    parser.add_argument(
        "--max-steal", type=float, default=0.1, help="... or the hypervisor stole more cores than this (0.1)"
    )
    parser.add_argument("--retries", type=int, default=4, help="prints discarded per slot before keeping one (4)")
    parser.add_argument(
        "--cpu", type=int, default=-1, help="pin OctoPrint to this CPU, the bench elsewhere (default: the last CPU)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin (threads float over all CPUs)")
    parser.add_argument(
        "--virtual-log", action="store_true", help="keep the virtual printer's own per-line serial log on"
    )
    parser.add_argument("--keep", action="store_true", help="keep the OctoPrint basedirs (logs) afterwards")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.height = 2, 6.0
    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown or len(keys) < 2:
        parser.error(f"--variants: at least two of {', '.join(VARIANTS)} (unknown: {', '.join(unknown) or '-'})")
    variants = [VARIANTS[k]() for k in keys]

    data, what = large_gcode(args.height)
    data = printable(data)
    warm, _ = large_gcode(2.0)
    lines = command_lines(data)
    cpus, pinning = pin_cpus(None if args.no_pin else args.cpu)
    work = Path(tempfile.mkdtemp(prefix="printmesh-bench-throughput-"))
    broker = LocalBroker(kind="mosquitto").start()
    counter = Counter(broker.host, broker.port)
    dead_port = free_port()  # nothing listens here
    print(machine_facts())
    print(f"# file: {what}; {len(lines)} command lines, {len(data) / 1e6:.1f} MB; {pinning}")
    try:
        for v in variants:
            port = broker.port if v.broker_up else dead_port
            v.server = start(
                work / v.key,
                {"node_id": v.node, "mqtt": {"host": "127.0.0.1", "port": port}, **v.settings},
                plugin_enabled=v.plugin,
                config={"serial": {"log": False}},
                single_file_plugins={"bench_probe": probe_source(False, quiet_virtual_log=not args.virtual_log)},
                cpus=cpus,
            )
        for v in variants:
            assert v.server is not None
            v.server.wait_operational()
            upload_analysed(v.server, "big.gcode", data)
            upload_analysed(v.server, "warm.gcode", printable(warm))
            if plugin_loaded(v.server) != v.plugin:
                raise SystemExit(f"{v.label}: printmesh plugin loaded = {plugin_loaded(v.server)}, expected {v.plugin}")
            if v.unhook:
                body = {"command": "unhook", "plugin": "printmesh", "phases": v.unhook}
                removed = v.server.api("POST", "/api/plugin/bench_probe", body)["removed"]
                print(f"# {v.label}: printmesh's {', '.join(removed)} hooks taken out of the comm")
        print("# warm-up: one short print per server (printmesh's hooks timed inside OctoPrint meanwhile)")
        warm_lines = len(command_lines(printable(warm)))
        for v in variants:
            assert v.server is not None
            timing = v.plugin and not v.unhook
            body: dict[str, Any] = {"command": "time_hooks", "plugin": "printmesh", "on": 1}
            if timing:
                v.server.api("POST", "/api/plugin/bench_probe", body)
            print_once(v, "warm.gcode", counter, 300)
            if timing:
                hooks = v.server.api("POST", "/api/plugin/bench_probe", {**body, "on": 0})["hooks"]
                parts = [f"{phase} {ns / n / 1000:.2f} us x {n}" for phase, (ns, n) in hooks.items() if n]
                total = sum(ns for ns, _ in hooks.values()) / warm_lines / 1000
                print(f"#   {v.label}: hooks {', '.join(parts)} calls = {total:.1f} us per file line")
            for values in v.series():
                values.clear()
        timeout = max(300.0, len(lines) / 200)
        schedule = [(rep, v) for rep in range(args.reps) for v in variants] + [(args.reps, variants[0])]
        for rep, v in schedule:
            for attempt in range(args.retries + 1):
                seconds, waited = print_once(v, "big.gcode", counter, timeout)
                cores = v.cpu[-1] / seconds
                noisy = cores < args.min_cores or v.steal[-1] > args.max_steal
                last = attempt == args.retries
                verdict = (" kept: still busy after retries" if last else " DISCARDED") if noisy else ""
                print(
                    f"#   round {rep + 1} {v.label:30s} {seconds:7.3f} s {len(lines) / seconds:6.0f} lines/s"
                    f"  (OctoPrint {cores:.2f} cores, rest of the machine {v.others[-1]:.2f}, steal"
                    f" {v.steal[-1]:.2f}; waited {waited:.0f} s for quiet){verdict}"
                )
                if not noisy or last:
                    break
                v.drop_last()
                v.discarded += 1
    finally:
        counter.close()
        for v in variants:
            if v.server is not None:
                v.server.stop()
        broker.stop()
        if args.keep:
            print(f"# basedirs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(variants, lines, args)
    return 0


def report(variants: list[Variant], lines: list[str], args: argparse.Namespace) -> None:
    n = len(lines)
    print()
    dropped = sum(v.discarded for v in variants)
    if dropped:
        print(
            f"# {dropped} prints discarded and printed again: OctoPrint got < {args.min_cores} cores"
            f" or steal > {args.max_steal} (other jobs on this machine)"
        )
    print(f"{'variant':32s} prints lines/s p50     min     max   spread  print s  cores  cpu us/line  mqtt msgs")
    for v in variants:
        rates = [n / t for t in v.times]
        cores = statistics.median(c / t for c, t in zip(v.cpu, v.times, strict=True))
        print(
            f"{v.label:32s} {len(rates):6d} {statistics.median(rates):11.0f} {min(rates):7.0f} {max(rates):7.0f}"
            f" {spread(rates):>8s} {statistics.median(v.times):8.2f} {cores:6.2f}"
            f" {statistics.median(v.cpu) / n * 1e6:12.1f} {statistics.median(v.messages):10.0f}"
        )
    print()
    print("CPU per line by thread, us (median over the prints)")
    labels = list(dict.fromkeys([*THREADS.values(), "other threads"]))
    print(f"{'thread':28s}" + "".join(f"{v.label[:31]:>32s}" for v in variants))
    for label in labels:
        row = [statistics.median(t.get(label, 0.0) for t in v.threads) / n * 1e6 for v in variants]
        if any(x >= 0.05 for x in row):
            print(f"{label:28s}" + "".join(f"{x:32.1f}" for x in row))
    others = "".join(f"{statistics.median(v.others):32.2f}" for v in variants)
    print(f"{'rest of the machine, cores':28s}{others}")
    for v in variants:
        if any(v.topics):
            median = {k: statistics.median(t.get(k, 0) for t in v.topics) for k in {k for t in v.topics for k in t}}
            names = sorted(median, key=lambda k: -median[k])
            counts = ", ".join(f"{k} {median[k]:.0f}" for k in names[:10])
            print(f"messages per print, {v.label}: {counts}{', ...' if len(names) > 10 else ''}")

    print()
    base = variants[0]
    for v in variants[1:]:
        ratios, cpu = bracketed(base, v), bracketed(base, v, "cpu")
        ratio = statistics.median(ratios)
        verdict = "met" if ratio >= 0.97 else "NOT met"
        print(
            f"ratio {v.label} / {base.label}: {ratio:.3f} lines/s (goal >= 0.97: {verdict});"
            f" per round {', '.join(f'{r:.3f}' for r in ratios)}; OctoPrint CPU per line x{statistics.median(cpu):.3f}"
        )
    motion = simulated_motion(lines, 1_000_000)
    cores = statistics.median(c / t for c, t in zip(base.cpu, base.times, strict=True))
    print(
        f"bottleneck: the comm path's CPU. OctoPrint's process used {cores:.2f} cores while streaming (one GIL);"
        f" the virtual printer's simulated moves add up to {motion:.3f} s at M220/M221 S1000000"
        f" ({simulated_motion(lines, 100):.0f} s at 100 %) of the {statistics.median(base.times):.1f} s print"
    )
    print(
        "(ratios: each print against the without-plugin rate interpolated to its midpoint from the"
        " without-plugin prints just before and after it)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
