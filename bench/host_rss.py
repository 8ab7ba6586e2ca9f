"""Resident memory of the real ``printmesh host`` process over a long run, against a LocalBroker.

Starts mosquitto (printmesh_devkit.broker.LocalBroker), then ``printmesh host`` with a config
sampling every ``--interval`` seconds (default 1 s, so the default 600 s run is ~600
samples), with PRINTMESH_MQTT__HOST/PORT pointing at the broker. An observer client counts
the state messages the agent publishes. VmRSS (and VmHWM, the peak) come from
/proc/<pid>/status. For comparison it also measures idle Python processes:
``python -c "import psutil, paho.mqtt.client"`` (the bare baseline), plain ``python``,
and ``python`` that only imports the printmesh host agent (import cost, no work).
Prints figures; asserts nothing.

    .venv/bin/python bench/host_rss.py [--duration 600] [--interval 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from printmesh_devkit.broker import LocalBroker

NODE = "rssbench"
VENV_BIN = Path(sys.executable).parent
GOAL_MB = 40.0


def status_kb(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM, RssAnon, RssFile, ...)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0])
    return out


def mb(kb: int) -> float:
    return kb / 1024


def idle_python_rss(code: str) -> dict[str, int]:
    """RSS of a python process that ran ``code`` and then waits."""
    script = f"{code}\nimport sys\nprint('ready', flush=True)\nsys.stdin.read()\n"
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"baseline process failed: {code!r}")
        time.sleep(0.2)
        return status_kb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


class StateCounter:
    """Counts the agent's state messages (one per sample)."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.count = 0
        self.first = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="rss-observer", protocol=paho.MQTTv5)
        self._client.on_connect = lambda c, u, f, reason, p: c.subscribe(topic, qos=1)
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.retain:  # a retained copy from before we subscribed is not a new sample
            return
        self.count += 1
        self.first.set()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds to run the agent (default 600)")
    parser.add_argument("--interval", type=float, default=1.0, help="host.interval, seconds (default 1)")
    parser.add_argument("--every", type=float, default=60.0, help="print a line every N seconds (default 60)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="printmesh-rss-"))
    config = tmp / "printmesh.yaml"
    config.write_text(f"node_id: {NODE}\nlog_level: WARNING\nhost:\n  interval: {args.interval}\n")
    exe = VENV_BIN / "printmesh"
    command = [str(exe), "host", "--config", str(config)]

    baselines = {
        'python -c "import psutil, paho.mqtt.client"  (bare baseline)': "import psutil, paho.mqtt.client",
        "python -c pass  (interpreter only)": "pass",
        "python: import printmesh_host.agent  (host imports only)": "import printmesh_core.cli, printmesh_host.agent",
        "python: cli.load_component('host')  (what `printmesh host` loads)": (
            "from printmesh_core.cli import load_component\nload_component('host')"
        ),
    }
    base_rss = {label: idle_python_rss(code) for label, code in baselines.items()}

    broker = LocalBroker(kind="mosquitto").start()
    env = {**os.environ, "PRINTMESH_MQTT__HOST": broker.host, "PRINTMESH_MQTT__PORT": str(broker.port)}
    counter = StateCounter(broker.host, broker.port, f"printmesh/{NODE}/host/state")
    log_path = tmp / "agent.log"
    print(f"# host_rss: {' '.join(command)}  (interval {args.interval} s, duration {args.duration:.0f} s)")
    print(f"# broker: {broker.kind} on {broker.host}:{broker.port}; agent log: {log_path}")
    print(
        f"# python {platform.python_version()} ({sys.executable}), {os.cpu_count()} CPUs, {platform.machine()}",
        flush=True,
    )
    with log_path.open("wb") as logf:
        proc = subprocess.Popen(command, env=env, stdout=logf, stderr=subprocess.STDOUT)
    rows: list[tuple[str, float, dict[str, int], int]] = []
    started = time.monotonic()
    cpu_start = 0.0
    try:
        if not counter.first.wait(30):
            raise SystemExit(f"the agent published no state within 30 s; log: {log_path}")
        t = time.monotonic() - started
        rows.append(("start (first sample)", t, status_kb(proc.pid), counter.count))
        cpu_start = proc_cpu_seconds(proc.pid)
        print(f"{'point':<22}{'t s':>8}{'VmRSS MB':>10}{'VmHWM MB':>10}{'RssAnon MB':>12}{'samples':>9}")
        print_row(rows[-1])
        checkpoints = [60.0] + [x for x in frange(args.every, args.duration, args.every) if x > 60.0]
        checkpoints = [c for c in checkpoints if c < args.duration] + [args.duration]
        for point in checkpoints:
            while time.monotonic() - started < point:
                if proc.poll() is not None:
                    raise SystemExit(f"the agent exited with {proc.returncode}; log: {log_path}")
                time.sleep(min(1.0, max(0.0, point - (time.monotonic() - started))))
            label = "1 min" if point == 60.0 else ("end" if point == args.duration else f"{point / 60:.0f} min")
            rows.append((label, time.monotonic() - started, status_kb(proc.pid), counter.count))
            print_row(rows[-1])
        cpu_total = proc_cpu_seconds(proc.pid) - cpu_start
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        counter.close()
        broker.stop()

    first, last = rows[0], rows[-1]
    one_min = next((r for r in rows if r[0] == "1 min"), last)
    span = last[1] - one_min[1]
    growth = (last[2]["VmRSS"] - one_min[2]["VmRSS"]) / 1024
    samples = last[3] - first[3]
    print()
    print(f"agent exit code after SIGTERM: {code}; state messages seen: {last[3]}")
    verdict = "met" if last[2]["VmHWM"] < GOAL_MB * 1024 else "NOT met"
    print(
        f"printmesh host: start {mb(first[2]['VmRSS']):.1f} MB, 1 min {mb(one_min[2]['VmRSS']):.1f} MB,"
        f" end {mb(last[2]['VmRSS']):.1f} MB ({last[2]['VmRSS']} kB), peak VmHWM {mb(last[2]['VmHWM']):.1f} MB"
        f"  goal: < {GOAL_MB:.0f} MB ({GOAL_MB * 1024:.0f} kB): {verdict}"
    )
    if span > 0:
        print(f"growth from 1 min to end: {growth:+.2f} MB over {span:.0f} s ({growth * 3600 / span:+.2f} MB/h)")
    if samples > 0:
        print(f"agent CPU: {cpu_total / samples * 1e3:.2f} ms per sample ({cpu_total:.2f} s for {samples} samples)")
    print()
    print("idle reference processes (same interpreter):")
    bare_label = next(iter(base_rss))
    for label, kb in base_rss.items():
        print(f"  {label:<68}{mb(kb['VmRSS']):>7.1f} MB ({kb['VmRSS']} kB)")
    bare = base_rss[bare_label]["VmRSS"]
    print(f"ratio printmesh host (end) / bare baseline: {last[2]['VmRSS'] / bare:.2f}x")
    return 0


def frange(start: float, stop: float, step: float) -> list[float]:
    out: list[float] = []
    x = start
    while x < stop:
        out.append(x)
        x += step
    return out


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def print_row(row: tuple[str, float, dict[str, int], int]) -> None:
    label, t, kb, count = row
    rss, hwm, anon = mb(kb["VmRSS"]), mb(kb["VmHWM"]), mb(kb.get("RssAnon", 0))
    print(f"{label:<22}{t:>8.1f}{rss:>10.1f}{hwm:>10.1f}{anon:>12.1f}{count:>9}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
