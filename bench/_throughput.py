"""bridge_throughput.py's parts: the broker counter, the log tail, the ratios and the statistics."""

from __future__ import annotations

import math
import re
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from _octoprint import OctoPrint
from paho.mqtt.enums import CallbackAPIVersion

# threads reported by name in the breakdown; everything else is summed as "other threads"
THREADS = {
    "comm._monitor": "comm._monitor (reads oks)",
    "comm.sending_thread": "comm.sending_thread",
    "octoprint.plugins.virtual_printer.wait_thread": "virtual printer: incoming",
    "octoprint.plugins.virtual_printer.buffer_thread": "virtual printer: moves",
    "printmesh-bridge": "printmesh-bridge worker",
    "paho-mqtt-client-": "paho thread",
    "printmesh-cmd": "printmesh command pool",
}
# Student's t, two-sided 95 %, by degrees of freedom (1-30); beyond, 1.96
T95 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def ci95(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95 % confidence interval (Student's t); a single value is its own interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    t = T95[len(values) - 2] if len(values) - 1 <= len(T95) else 1.96
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def latency_pairs(fired: list[float], received: list[float], into: Any) -> list[float]:
    """ms from each fire to the first later arrival not yet paired (events are >= 10 ms apart
    and arrive in order); fires never paired are counted in ``into.lost``."""
    out, j = [], 0
    received = sorted(received)
    for f in sorted(fired):
        while j < len(received) and received[j] < f:
            j += 1
        if j == len(received):
            into.lost += 1
            continue
        out.append((received[j] - f) * 1000)
        j += 1
    return out


class Counter:
    """Counts the broker's messages per node (printmesh/<node>/...; OctoPrint-MQTT's octoPrint/...
    as node ``octoprint-mqtt``) and stamps each PositionUpdate event message on arrival."""

    def __init__(self, host: str, port: int) -> None:
        self.counts: dict[str, int] = {}
        self.topics: dict[str, dict[str, int]] = {}  # node -> topic under the node (+ event name) -> count
        self.lock = threading.Lock()
        self.positions: list[float] = []  # time.time() at arrival of each PositionUpdate message
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-throughput-counter")
        self.client.on_message = self._on_message
        connected = threading.Event()
        topics = [("printmesh/#", 0), ("octoPrint/#", 0)]
        self.client.on_connect = lambda c, u, f, reason, p: (c.subscribe(topics), connected.set())
        self.client.connect(host, port)
        self.client.loop_start()
        if not connected.wait(10):
            raise SystemExit("counter did not connect to the broker")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        arrived = time.time()
        parts = msg.topic.split("/")
        if parts[0] == "octoPrint":
            node, rest = "octoprint-mqtt", "/".join(parts[1:])
            if rest == "event/PositionUpdate":
                self.positions.append(arrived)
        else:
            node, rest = parts[1], "/".join(parts[2:])
            if rest.endswith("/event") and msg.payload:  # event messages by event name
                name = re.search(rb'"event":\s*"([^"]+)"', msg.payload)
                rest += f" {name.group(1).decode()}" if name else ""
                if rest.endswith(" PositionUpdate"):
                    self.positions.append(arrived)
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


def bracketed(base: Any, other: Any, values: str = "rate") -> list[float]:
    """Each print of ``other`` against ``base`` interpolated (linearly in time) to its midpoint
    (prints before the first or after the last ``base`` print are left out).
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
