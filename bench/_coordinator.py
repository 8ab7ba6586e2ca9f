"""Shared by coordinator_overhead.py and coordinator_fleet.py: machine facts, percentiles, the
coordinator as a subprocess, its CPU and memory from /proc, and a bare paho client that records
what crosses the broker (the "wire").

The wire recorder is a bare paho-mqtt 2.x client (MQTT 5, QoS 1, TCP_NODELAY, loop_start)
subscribed beside the real parties: the broker hands it every message at the same moment
as the intended recipient, so its clock sees who holds the ball at any time. Its callback
only appends ``(perf_counter_ns, topic, payload)``; everything is parsed after the run.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt import __version__ as paho_version
from paho.mqtt.enums import CallbackAPIVersion

from printmesh_devkit.broker import LocalBroker, mosquitto_path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


# ------------------------------------------------------------------ figures
def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (as rtt.py), q in [0, 100]; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def p50_p99(values: list[float], scale: float = 1000.0, width: int = 8, digits: int = 2) -> str:
    """'p50 x  p99 y' of seconds shown in ms (``scale`` 1000)."""
    return f"{percentile(values, 50) * scale:{width}.{digits}f} {percentile(values, 99) * scale:{width}.{digits}f}"


# ------------------------------------------------------------------ facts
def mosquitto_version() -> str:
    exe = mosquitto_path()
    if exe is None:
        return "?"
    words = subprocess.run([exe, "-h"], capture_output=True, text=True, check=False).stdout.split()
    return words[2] if len(words) > 2 else "?"


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h"], capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "coordinator", "core", "agents", "bridge_octoprint"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() + (" (product code has uncommitted changes)" if dirty.stdout.strip() else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_facts(extra: str = "") -> str:
    return (
        f"# {platform.platform()}, {os.cpu_count()} CPUs ({cpu_model()}), load average {load_average()}\n"
        f"# python {platform.python_version()}, paho-mqtt {paho_version}, mosquitto {mosquitto_version()},"
        f" commit {git_head()}" + (f"\n# {extra}" if extra else "")
    )


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the benchmark's ``finally`` stops every process it started."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


class MachineLoad:
    """CPU the whole machine used between ``__init__`` and ``cores()``, in cores (/proc/stat: user, nice,
    system, irq, softirq and steal of every CPU; this benchmark's own processes included)."""

    def __init__(self) -> None:
        self.busy0, self.t0 = self._busy(), time.monotonic()

    @staticmethod
    def _busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def cores(self) -> float:
        return (self._busy() - self.busy0) / max(1e-9, time.monotonic() - self.t0)

    def describe(self) -> str:
        return (
            f"the machine was busy {self.cores():.2f} of {os.cpu_count()} cores on average over the run"
            f" (this benchmark's processes included), load average now {load_average()}"
        )


def wait_quiet(timeout: float, max_cores: float = 0.5, window: float = 2.0) -> str:
    """Wait (at most ``timeout`` s) until the machine used at most ``max_cores`` over ``window`` s:
    on a shared machine, someone else's job skews a run. Says how it went, for the output."""
    if timeout <= 0:
        return "did not wait for a quiet machine"
    started = time.monotonic()
    while True:
        load = MachineLoad()
        time.sleep(window)
        cores = load.cores()
        waited = time.monotonic() - started
        if cores <= max_cores:
            return f"waited {waited:.0f} s for a quiet machine ({cores:.2f} cores busy over {window:g} s)"
        if waited >= timeout:
            return f"gave up waiting for a quiet machine after {waited:.0f} s ({cores:.2f} cores busy)"


# ------------------------------------------------------------------ /proc
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and RssAnon of a process, kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            out[key] = int(rest.split()[0])
    return out


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# ------------------------------------------------------------------ processes
def agent_env(broker: LocalBroker, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update(PRINTMESH_MQTT__HOST=broker.host, PRINTMESH_MQTT__PORT=str(broker.port), **extra)
    return env


def start_agent(component: str, config: dict[str, Any], workdir: Path, broker: LocalBroker, name: str = "") -> Any:
    """``python -m printmesh_core.cli <component> --config <yaml>`` with its output in a log file."""
    name = name or component
    cfg = workdir / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = (workdir / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [PYTHON, "-m", "printmesh_core.cli", component, "--config", str(cfg)],
        env=agent_env(broker),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log_path = workdir / f"{name}.log"  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen[Any], timeout: float = 20) -> int | None:
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


# ------------------------------------------------------------------ MQTT
def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def bare_client(client_id: str, broker: LocalBroker) -> paho.Client:
    """A bare paho-mqtt client as in rtt.py: MQTT 5, TCP_NODELAY, its own network thread, connected."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_socket_open = _nodelay
    connected = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: connected.set()
    client.connect(broker.host, broker.port, keepalive=60, clean_start=True)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit(f"{client_id} did not connect to {broker.host}:{broker.port}")
    return client


def subscribe(client: paho.Client, filters: list[str]) -> None:
    acked = threading.Event()
    client.on_subscribe = lambda c, u, mid, reasons, p: acked.set()
    client.subscribe([(f, paho.SubscribeOptions(qos=1)) for f in filters])
    if not acked.wait(10):
        raise SystemExit(f"no SUBACK for {filters}")


class Wire:
    """Records every message on ``filters`` with the time it arrived (perf_counter_ns)."""

    def __init__(self, broker: LocalBroker, filters: list[str], client_id: str = "bench-wire") -> None:
        self.messages: list[tuple[int, str, bytes]] = []
        self.client = bare_client(client_id, broker)
        self.client.on_message = self._on_message
        subscribe(self.client, filters)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self.messages.append((time.perf_counter_ns(), msg.topic, msg.payload))

    def mark(self) -> int:
        return len(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
