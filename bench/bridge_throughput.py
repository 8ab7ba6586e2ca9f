"""Print streaming throughput and event latency on the virtual printer: no plugin, printmesh,
OctoPrint-MQTT, in one run, each print in a fresh OctoPrint session.

Real ``octoprint serve`` (OctoPrint 1.11, virtual printer, serial.log off), one basedir per
arm made like tests/octoprint_harness.py's, and a real mosquitto (LocalBroker):

* ``off``     without plugin: printmesh in ``plugins._disabled``, OctoPrint does not load it.
* ``on``      printmesh, connected to the broker. ``events.exclude`` is emptied so that
              PositionUpdate is published, as OctoPrint-MQTT publishes every event.
* ``mqtt``    OctoPrint-MQTT 0.8.16 (pinned commit), from its public source, in a venv of its
              own with the same OctoPrint (bench/_octoprint_mqtt.py), connected to the broker.
* ``before``  printmesh from another source tree (``--before DIR``, e.g. a ``git archive`` of
              the base commit): its ``core/src`` and ``bridge_octoprint/src`` first on the
              server's PYTHONPATH. Before and after in the same run.
* ``shipped`` printmesh with its own defaults: ``PositionUpdate`` (and ``ZChange``) left out of the
              event stream, so it has no event latency, and the probe's M114s cost it nothing to send.
* diagnostics: ``down`` (printmesh, broker down), ``nohooks`` (printmesh, its queuing hook
  taken out of the running comm), ``nozchange`` (ZChange and PositionUpdate excluded).

**Sessions.** Every arm's basedir gets the file uploaded and analysed once. Then
``--sessions`` rounds start each arm in turn (off, on, mqtt, off, on, mqtt, ..., off) as a
fresh ``octoprint serve``: wait until Operational and the machine is quiet, measure event
latency at idle, print the file ``--prints`` times, stop the server. Every plugin session is
bracketed by two without-plugin sessions and its rate is taken against the without-plugin
rate interpolated to its midpoint, which cancels the drift of a shared machine; the ratio
is reported per session, as a mean with its 95 % CI (Student's t over sessions), median
and spread.

**File.** bench/make_tall_part.py's part at ``--layers`` (122: 20,311 command lines, the
size of the issue's 20,404-line file), heat-up waits made M117. Before each print
``M220 S1000000`` and ``M221 S1000000`` make the virtual printer's moves microseconds long,
so the comm path's CPU is what limits. The print time is OctoPrint's own ``Finished in N s.``
in octoprint.log; nothing polls OctoPrint while it prints. OctoPrint is pinned to one CPU,
the bench and broker to the others; a print during which OctoPrint got less than
``--min-cores`` of its CPU or the hypervisor stole more than ``--max-steal`` is discarded
and printed again (``--retries``).

**Event latency** (PositionUpdate, fire -> MQTT subscriber): a probe plugin in every
server stamps ``EventManager.fire`` and sends ``M114`` from a thread of its own: at idle
(``--events`` of them, 10-30 ms apart) and while printing (one every 100-200 ms, in every
arm alike). A subscriber in this process stamps each PositionUpdate message
(printmesh: ``printmesh/<node>/printer/event``; OctoPrint-MQTT: ``octoPrint/event/PositionUpdate``).
Prints p50/p99/max per arm. Asserts nothing.

    .venv/bin/python bench/bridge_throughput.py [--sessions 5] [--prints 2] [--before DIR]
        [--octoprint-mqtt-src CLONE]
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _octoprint import (
    REPO,
    SPEEDUP,
    OctoPrint,
    command_lines,
    machine_cpu,
    machine_facts,
    pin_cpus,
    plugin_loaded,
    printable,
    probe_source,
    serve,
    spread,
    start,
    thread_cpu,
    upload_analysed,
    wait_quiet,
)
from _octoprint_mqtt import COMMIT, VERSION, octoprint_mqtt_venv
from _octoprint_mqtt import settings as mqtt_settings
from _throughput import THREADS, Counter, LogTail, bracketed, ci95, latency_pairs, simulated_motion, thread_labels
from make_tall_part import generate

from printmesh_devkit.broker import LocalBroker, free_port

FINISHED = re.compile(rb"Finished in ([\d.]+) s\.")
OPERATIONAL = re.compile(rb'from "Finishing" to "Operational"')
SETTINGS_PY = "bridge_octoprint/src/octoprint_printmesh/settings.py"
DEFAULT_EXCLUDE = re.compile(r'"events": \{"enabled": True, "exclude": (\[[^\]]*\])\}')


def publish_position(tree: Path) -> dict[str, Any]:
    """Settings that publish what ``tree``'s defaults publish, plus PositionUpdate (the latency
    probe's event; printmesh leaves it out by default, OctoPrint-MQTT sends every event)."""
    found = DEFAULT_EXCLUDE.search((tree / SETTINGS_PY).read_text())
    exclude = ast.literal_eval(found.group(1)) if found else []
    return {"events": {"exclude": [e for e in exclude if e != "PositionUpdate"]}}


@dataclass
class Variant:
    key: str
    label: str
    plugin: bool = True  # printmesh loaded
    broker_up: bool = True
    settings: dict[str, Any] = field(default_factory=dict)  # printmesh settings on top
    unhook: list[str] = field(default_factory=list)
    venv: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    mqtt_plugin: bool = False
    basedir: Path | None = None
    server: OctoPrint | None = None
    times: list[float] = field(default_factory=list)  # OctoPrint's print time, s, per print
    mids: list[float] = field(default_factory=list)  # monotonic midpoint of each print
    sessions: list[int] = field(default_factory=list)  # the session each print belongs to
    cpu: list[float] = field(default_factory=list)  # process CPU s per print
    threads: list[dict[str, float]] = field(default_factory=list)
    gc: list[dict[str, tuple[int, float]]] = field(default_factory=list)  # generation -> (collections, ms) per print
    messages: list[int] = field(default_factory=list)
    topics: list[dict[str, int]] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    steal: list[float] = field(default_factory=list)
    idle_ms: list[float] = field(default_factory=list)  # PositionUpdate fire -> subscriber
    stream_ms: list[float] = field(default_factory=list)
    lost: int = 0  # PositionUpdates fired that never reached the subscriber
    discarded: int = 0

    @property
    def node(self) -> str:
        return "octoprint-mqtt" if self.mqtt_plugin else f"bench-{self.key}"

    def series(self) -> tuple[list[Any], ...]:
        return (self.times, self.mids, self.sessions, self.cpu, self.threads, self.gc, self.messages, self.topics,
                self.others, self.steal)  # fmt: skip

    def drop_last(self) -> None:
        for values in self.series():
            values.pop()


def variants(args: argparse.Namespace) -> dict[str, Any]:
    before = {"PYTHONPATH": f"{args.before}/core/src:{args.before}/bridge_octoprint/src"} if args.before else {}
    return {
        "off": lambda: Variant("off", "without plugin", plugin=False),
        "on": lambda: Variant("on", "printmesh", settings=publish_position(REPO)),
        "mqtt": lambda: Variant(
            "mqtt",
            f"OctoPrint-MQTT {VERSION}",
            plugin=False,
            mqtt_plugin=True,
            venv=octoprint_mqtt_venv(args.octoprint_mqtt_src),
        ),
        "before": lambda: Variant(
            "before",
            "printmesh, before tree",
            settings=publish_position(Path(args.before or REPO)),
            env=before,
        ),
        "down": lambda: Variant("down", "printmesh, broker down", broker_up=False),
        "nohooks": lambda: Variant("nohooks", "printmesh, no queuing hook", unhook=["queuing"]),
        "shipped": lambda: Variant("shipped", "printmesh, its defaults"),  # no PositionUpdate: no latency measured
        "nozchange": lambda: Variant(
            "nozchange", "printmesh, no ZChange events", settings={"events": {"exclude": ["PositionUpdate", "ZChange"]}}
        ),
    }


def probe(server: OctoPrint, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        return server.api("GET", "/api/plugin/bench_probe?clear=1")
    return server.api("POST", "/api/plugin/bench_probe", body)


def fired_positions(server: OctoPrint) -> list[float]:
    return [t for event, t in probe(server)["fired"] if event == "PositionUpdate"]


def idle_latency(v: Variant, counter: Counter, n: int) -> None:
    """``n`` M114s 10-30 ms apart at idle; each PositionUpdate's fire -> subscriber time."""
    server = v.server
    assert server is not None
    probe(server)  # clears the stamps
    counter.positions.clear()
    probe(server, {"command": "drive", "gcode": "M114", "count": n, "burst": 1, "gap_min": 0.01, "gap_max": 0.03})
    fired: list[float] = []
    deadline = time.monotonic() + 10 + n * 0.05
    while time.monotonic() < deadline:
        time.sleep(0.5)
        fired += fired_positions(server)
        if len(fired) >= n:
            break
    time.sleep(0.5)
    v.idle_ms += latency_pairs(fired, list(counter.positions), v)


def print_once(v: Variant, name: str, counter: Counter, timeout: float, session: int) -> tuple[float, float]:
    """One print, M114s sent throughout; returns OctoPrint's print time and the seconds waited for quiet."""
    server = v.server
    assert server is not None
    server.api("POST", "/api/printer/command", {"commands": SPEEDUP})
    time.sleep(0.3)
    tail = LogTail(server.basedir / "logs" / "octoprint.log")
    waited = wait_quiet(max_cores=0.5, timeout=8)
    gc_before = probe(server).get("gc", {})
    counter.positions.clear()
    drive = {"command": "drive", "gcode": "M114", "while_printing": True, "count": 0, "burst": 1}
    probe(server, {**drive, "gap_min": 0.1, "gap_max": 0.2})
    before, machine_before, t0 = thread_cpu(server.proc.pid), machine_cpu(), time.monotonic()
    sent_before, topics_before = counter.count(v.node), counter.by_topic(v.node)
    server.api("POST", f"/api/files/local/{name}", {"command": "select", "print": True})
    found = tail.wait_for(FINISHED, timeout)
    tail.wait_for(OPERATIONAL, 30)
    after, machine_after, t1 = thread_cpu(server.proc.pid), machine_cpu(), time.monotonic()
    time.sleep(0.5)  # late messages of this print
    after_print = probe(server)
    fired = [t for event, t in after_print["fired"] if event == "PositionUpdate"]
    v.stream_ms += latency_pairs(fired, list(counter.positions), v)
    gc_after = after_print.get("gc", {})
    v.gc.append({g: (n - gc_before.get(g, [0, 0])[0], (ns - gc_before.get(g, [0, 0])[1]) / 1e6)
                 for g, (n, ns) in gc_after.items()})  # fmt: skip
    labels = thread_labels(server)
    per: dict[str, float] = {}
    for tid, cpu in after.items():
        label = labels.get(tid, "other threads")
        per[label] = per.get(label, 0.0) + cpu - before.get(tid, 0.0)
    own = sum(after.values()) - sum(before.values())
    v.times.append(float(found.group(1)))
    v.mids.append((t0 + t1) / 2)
    v.sessions.append(session)
    v.cpu.append(own)
    v.threads.append(per)
    v.messages.append(counter.count(v.node) - sent_before)
    topics = counter.by_topic(v.node)
    v.topics.append({k: n - topics_before.get(k, 0) for k, n in topics.items() if n > topics_before.get(k, 0)})
    v.others.append((machine_after[0] - machine_before[0] - own) / (t1 - t0))
    v.steal.append((machine_after[1] - machine_before[1]) / (t1 - t0))
    return v.times[-1], waited


def launch(v: Variant, cpus: set[int] | None) -> OctoPrint:
    assert v.basedir is not None
    v.server = serve(v.basedir, cpus=cpus, venv=v.venv, env=v.env)
    v.server.wait_operational()
    return v.server


def check_loaded(v: Variant) -> None:
    assert v.server is not None
    log = v.server.log()
    if plugin_loaded(v.server) != v.plugin:
        raise SystemExit(f"{v.label}: printmesh plugin loaded = {plugin_loaded(v.server)}, expected {v.plugin}")
    tree = v.env.get("PYTHONPATH", "").split(":")[-1]
    if tree and f"printmesh (0.1.0) = {tree}" not in log.replace("//", "/"):
        raise SystemExit(f"{v.label}: printmesh was not loaded from {tree}")
    if v.mqtt_plugin and f"MQTT ({VERSION})" not in log:
        raise SystemExit(f"{v.label}: OctoPrint-MQTT {VERSION} is not in the plugin list of {v.server.basedir}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5, help="fresh OctoPrint sessions per arm (5)")
    parser.add_argument("--prints", type=int, default=2, help="prints of the file per session (2)")
    parser.add_argument("--layers", type=int, default=122, help="make_tall_part.py layers: ~166 lines each (122)")
    parser.add_argument("--events", type=int, default=100, help="PositionUpdates at idle per session (100)")
    parser.add_argument("--quick", action="store_true", help="a short run: --sessions 2 --prints 1 --layers 40")
    parser.add_argument("--variants", default="off,on,mqtt", help="comma-separated, the first is the reference")
    parser.add_argument("--before", help="a source tree for the 'before' arm (added to --variants if given)")
    parser.add_argument("--octoprint-mqtt-src", help=f"a clone of OctoPrint-MQTT with commit {COMMIT[:10]}")
    parser.add_argument("--min-cores", type=float, default=0.9, help="discard a print below this (0.9)")
    parser.add_argument("--max-steal", type=float, default=0.1, help="... or with more steal than this (0.1)")
    parser.add_argument("--retries", type=int, default=2, help="prints discarded per slot before keeping one (2)")
    parser.add_argument("--cpu", type=int, default=-1, help="pin OctoPrint to this CPU (default: the last)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin")
    parser.add_argument("--virtual-log", action="store_true", help="keep the virtual printer's serial log on")
    parser.add_argument("--keep", action="store_true", help="keep the OctoPrint basedirs (logs) afterwards")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.prints, args.layers = 2, 1, 40
    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    if args.before and "before" not in keys:
        keys.append("before")
    table = variants(args)
    unknown = [k for k in keys if k not in table]
    if unknown or len(keys) < 2 or ("before" in keys and not args.before):
        parser.error(f"--variants: at least two of {', '.join(table)}; 'before' needs --before (bad: {unknown})")
    arms: list[Variant] = [table[k]() for k in keys]

    data = printable(generate(args.layers).encode())
    lines = command_lines(data)
    cpus, pinning = pin_cpus(None if args.no_pin else args.cpu)
    work = Path(tempfile.mkdtemp(prefix="printmesh-bench-throughput-"))
    broker = LocalBroker(kind="mosquitto").start()
    counter = Counter(broker.host, broker.port)
    dead_port = free_port()
    print(machine_facts())
    before = f"; before tree {args.before}" if args.before else ""
    print(
        f"# file: make_tall_part.py --layers {args.layers}: {len(lines)} command lines, {len(data) / 1e6:.2f} MB;"
        f" {pinning}; OctoPrint-MQTT {VERSION} at {COMMIT[:10]}{before}"
    )
    try:
        for v in arms:  # one basedir per arm, the file uploaded and analysed once
            v.basedir = work / v.key
            port = broker.port if v.broker_up else dead_port
            extra = mqtt_settings(broker.host, broker.port) if v.mqtt_plugin else {}
            plugins = {"bench_probe": probe_source(True, quiet_virtual_log=not args.virtual_log)}
            v.server = start(
                v.basedir, {"node_id": v.node, "mqtt": {"host": "127.0.0.1", "port": port}, **v.settings},
                plugin_enabled=v.plugin, config={"serial": {"log": False}, **extra}, cpus=cpus, venv=v.venv,
                env=v.env, single_file_plugins=plugins,
            )  # fmt: skip
            v.server.wait_operational()
            check_loaded(v)
            upload_analysed(v.server, "big.gcode", data)
            v.server.stop()
            v.server = None
        timeout = max(300.0, len(lines) / 200)
        schedule = [(s, v) for s in range(args.sessions) for v in arms] + [(args.sessions, arms[0])]
        for session, v in schedule:
            server = launch(v, cpus)
            try:
                if v.unhook:
                    probe(server, {"command": "unhook", "plugin": "printmesh", "phases": v.unhook})
                wait_quiet(max_cores=0.5, timeout=8)
                idle_latency(v, counter, args.events)
                for n in range(args.prints):
                    for attempt in range(args.retries + 1):
                        seconds, waited = print_once(v, "big.gcode", counter, timeout, session)
                        cores = v.cpu[-1] / seconds
                        noisy = cores < args.min_cores or v.steal[-1] > args.max_steal
                        last = attempt == args.retries
                        verdict = (" kept: still busy" if last else " DISCARDED") if noisy else ""
                        print(
                            f"#   session {session + 1}.{n + 1} {v.label:26s} {seconds:7.3f} s"
                            f" {len(lines) / seconds:6.0f} lines/s (OctoPrint {cores:.2f} cores,"
                            f" rest {v.others[-1]:.2f}, steal {v.steal[-1]:.2f};"
                            f" waited {waited:.0f} s for quiet){verdict}", flush=True,
                        )  # fmt: skip
                        if not noisy or last:
                            break
                        v.drop_last()
                        v.discarded += 1
            finally:
                server.stop()
                v.server = None
    finally:
        counter.close()
        for v in arms:
            if v.server is not None:
                v.server.stop()
        broker.stop()
        if args.keep:
            print(f"# basedirs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(arms, lines, args)
    return 0


def per_session(base: Variant, v: Variant, values: str) -> list[float]:
    """The bracketed ratio of each of ``v``'s sessions (the mean over its prints)."""
    ratios = bracketed(base, v, values)
    by: dict[int, list[float]] = {}
    for s, r in zip(v.sessions, ratios, strict=False):
        by.setdefault(s, []).append(r)
    return [statistics.fmean(rs) for _, rs in sorted(by.items())]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def report(arms: list[Variant], lines: list[str], args: argparse.Namespace) -> None:
    n = len(lines)
    print()
    dropped = sum(v.discarded for v in arms)
    if dropped:
        print(f"# {dropped} prints discarded and printed again (< {args.min_cores} cores or steal > {args.max_steal})")
    print(f"{'arm':28s} prints lines/s p50     min     max   spread  print s  cores  cpu us/line  mqtt msgs")
    for v in arms:
        rates = [n / t for t in v.times]
        cores = statistics.median(c / t for c, t in zip(v.cpu, v.times, strict=True))
        print(
            f"{v.label:28s} {len(rates):6d} {statistics.median(rates):11.0f} {min(rates):7.0f} {max(rates):7.0f}"
            f" {spread(rates):>8s} {statistics.median(v.times):8.2f} {cores:6.2f}"
            f" {statistics.median(v.cpu) / n * 1e6:12.1f} {statistics.median(v.messages):10.0f}"
        )
    print()
    print("CPU per line by thread, us (median over the prints)")
    print(f"{'thread':28s}" + "".join(f"{v.label[:25]:>26s}" for v in arms))
    for label in dict.fromkeys([*THREADS.values(), "other threads"]):
        row = [statistics.median(t.get(label, 0.0) for t in v.threads) / n * 1e6 for v in arms]
        if any(x >= 0.05 for x in row):
            print(f"{label:28s}" + "".join(f"{x:26.1f}" for x in row))
    if any(v.gc and v.gc[0] for v in arms):
        print("garbage collections in OctoPrint's process per print (median): count / ms, by generation")
        for v in arms:
            cells = []
            for g in ("0", "1", "2"):
                count = statistics.median(p.get(g, (0, 0.0))[0] for p in v.gc) if v.gc else 0
                ms = statistics.median(p.get(g, (0, 0.0))[1] for p in v.gc) if v.gc else 0.0
                cells.append(f"gen{g} {count:5.0f} / {ms:6.1f}")
            print(f"  {v.label:26s} " + "   ".join(cells))
    for v in arms:
        if any(v.topics):
            median = {k: statistics.median(t.get(k, 0) for t in v.topics) for k in {k for t in v.topics for k in t}}
            names = sorted(median, key=lambda k: -median[k])
            counts = ", ".join(f"{k} {median[k]:.0f}" for k in names[:8])
            print(f"messages per print, {v.label}: {counts}{', ...' if len(names) > 8 else ''}")
    print()
    head = "idle: n  p50    p99    max | streaming: n  p50    p99    max"
    print(f"PositionUpdate, fire -> MQTT subscriber, ms      {head}")
    for v in arms:
        if v.idle_ms or v.stream_ms:
            cells = []
            for ms in (v.idle_ms, v.stream_ms):
                p50, p99 = (statistics.median(ms), pct(ms, 0.99)) if ms else (0.0, 0.0)
                cells.append(f"{len(ms):5d} {p50:6.2f} {p99:6.2f} {max(ms):6.1f}" if ms else "    -")
            print(f"{v.label:46s} {cells[0]}   |       {cells[1]}   (lost {v.lost})")
    print()
    base = arms[0]
    for v in arms[1:]:
        rate, cpu = per_session(base, v, "rate"), per_session(base, v, "cpu")
        if not rate:
            continue
        mean, low, high = ci95(rate)
        verdict = "met" if mean >= 0.97 else "NOT met"
        print(
            f"ratio {v.label} / {base.label}: {mean:.3f} lines/s (95 % CI {low:.3f}-{high:.3f}, median"
            f" {statistics.median(rate):.3f}, spread {min(rate):.3f}-{max(rate):.3f}; goal >= 0.97: {verdict});"
            f" per session {', '.join(f'{r:.3f}' for r in rate)}; OctoPrint CPU per line x{statistics.fmean(cpu):.3f}"
            f" (CI {ci95(cpu)[1]:.3f}-{ci95(cpu)[2]:.3f})"
        )
    pm = next((v for v in arms if v.key == "on"), None)
    om = next((v for v in arms if v.mqtt_plugin), None)
    if pm is not None and om is not None and pm.times and om.times:
        a, b = statistics.fmean(per_session(base, pm, "rate")), statistics.fmean(per_session(base, om, "rate"))
        print(f"printmesh vs OctoPrint-MQTT, same run: {a:.3f} vs {b:.3f} ({'not worse' if a >= b else 'WORSE'})")
    motion = simulated_motion(lines, 1_000_000)
    cores = statistics.median(c / t for c, t in zip(base.cpu, base.times, strict=True))
    print(
        f"bottleneck: the comm path's CPU ({cores:.2f} cores while streaming); simulated moves add {motion:.3f} s"
        f" at M220/M221 S1000000 of the {statistics.median(base.times):.1f} s print"
    )


if __name__ == "__main__":
    raise SystemExit(main())
