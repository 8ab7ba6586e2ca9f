"""Event latency: an OctoPrint event to an MQTT subscriber, through the printmesh plugin, vs bare paho.

One real ``octoprint serve`` (OctoPrint 1.11, virtual printer) with the printmesh plugin
connected to a real mosquitto (LocalBroker), and a subscriber in this process (paho, MQTT 5,
QoS 1, TCP_NODELAY) on ``printmesh/<node>/printer/event``. The events are ``Dwelling``,
which OctoPrint fires from its comm thread when it sends a ``G4`` to the printer. A probe
plugin (one file in the basedir, identifier ``bench_probe``):

* sends ``G4 P0`` through ``printer.commands()`` from a thread of its own, paced as asked
  (no HTTP request per event competing with the event path);
* wraps ``EventManager.fire`` to stamp the moment each event is fired;
* stamps its own ``on_event``, which OctoPrint calls just before printmesh's (plugins are
  called in identifier order; checked against the plugin's own ``ts``).

All stamps are ``time.time()`` on one machine, so they compare:

* fire -> on_event        OctoPrint's event queue and dispatch thread
* on_event -> received    the plugin (record_event, its queue and worker, the model, paho),
                          the broker and the subscriber
* payload ts -> received  the same from the plugin's ``ts`` (stamped in record_event, rounded to the ms)
* total                   fire -> received

Side by side, in alternating blocks, the broker floor: a bare paho publisher in another
process (MQTT 5, QoS 1, TCP_NODELAY), paced the same way, sending a JSON document of the
same size to the same subscriber, stamped just before ``publish()``. Two pacings:
``spaced`` (one event, then 10-30 ms) and ``burst`` (10 back to back, then 100-200 ms, as
when a print starts or ends and several events come at once). Prints p50/p99 and ratios to
the floor; asserts nothing.

    .venv/bin/python bench/bridge_events.py [-n 1000] [--block 50] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from _octoprint import OctoPrint, machine_facts, plugin_loaded, probe_source, start
from paho.mqtt.enums import CallbackAPIVersion

from printmesh_devkit.broker import LocalBroker

NODE = "bench-events"
EVENT_TOPIC = f"printmesh/{NODE}/printer/event"
FLOOR_TOPIC = f"bare/{NODE}/printer/event"
BURST = 10

# The floor publisher, run as its own process: reads "<count> <gap seconds>" lines on stdin,
# publishes that many messages (a gap apart) and answers "done".
PUBLISHER = r"""
import json, random, socket, sys, threading, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
host, port, topic, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor-publisher", protocol=paho.MQTTv5)
client.on_socket_open = lambda c, u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
up = threading.Event()
client.on_connect = lambda c, u, f, r, p: up.set()
client.connect(host, port)
client.loop_start()
up.wait(10)
seq = 0
print("ready", flush=True)
for line in sys.stdin:
    rounds, burst, gap_min, gap_max = line.split()
    for _ in range(int(rounds)):
        for _ in range(int(burst)):
            doc = {"ts": 0.0, "source": "octoprint", "event": "Dwelling", "payload": None, "seq": seq, "pad": ""}
            doc["pad"] = "x" * max(0, size - len(json.dumps(doc)) - 2)
            seq += 1
            doc["ts"] = time.time()
            client.publish(topic, json.dumps(doc), qos=1)
        time.sleep(random.uniform(float(gap_min), float(gap_max)))
    print("done", flush=True)
"""
PACINGS = {"spaced": (1, 0.01, 0.03), "burst": (BURST, 0.1, 0.2)}  # events per round, gap between rounds (s)


class Subscriber:
    """Stamps every message on the two topics with time.time() as it arrives."""

    def __init__(self, host: str, port: int) -> None:
        self.received: dict[str, list[tuple[float, bytes]]] = {EVENT_TOPIC: [], FLOOR_TOPIC: []}
        self.cond = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, "bench-events-subscriber", protocol=paho.MQTTv5)
        self.client.on_socket_open = lambda c, u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe([(EVENT_TOPIC, 1), (FLOOR_TOPIC, 1)])
        self.client.on_subscribe = lambda c, u, mid, reasons, p: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise SystemExit("subscriber did not connect")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        at = time.time()
        with self.cond:
            self.received[msg.topic].append((at, msg.payload))
            self.cond.notify_all()

    def count(self, topic: str) -> int:
        with self.cond:
            return sum(1 for _, p in self.received[topic] if b"Dwelling" in p)

    def wait_count(self, topic: str, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.count(topic) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count(topic)} of {count} messages on {topic}")
            with self.cond:
                self.cond.wait(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def probe(server: OctoPrint, clear: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = server.api("GET", "/api/plugin/bench_probe" + ("?clear=1" if clear else ""))
    return result


def drive_octoprint(server: OctoPrint, sub: Subscriber, count: int, pacing: str) -> None:
    """``count`` Dwelling events, sent by the probe's own thread through printer.commands()
    (no HTTP request per event competing with the event path)."""
    burst, gap_min, gap_max = PACINGS[pacing]
    before = sub.count(EVENT_TOPIC)
    body = {"command": "drive", "count": count // burst, "burst": burst, "gap_min": gap_min, "gap_max": gap_max}
    server.api("POST", "/api/plugin/bench_probe", body)
    sub.wait_count(EVENT_TOPIC, before + count, timeout=60 + count * gap_max)


class Floor:
    """The bare paho publisher process, paced like the OctoPrint side."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, host, str(port), FLOOR_TOPIC, str(size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        if self.stdout.readline().strip() != "ready":
            raise SystemExit("the floor publisher did not start")

    def drive(self, sub: Subscriber, count: int, pacing: str) -> None:
        burst, gap_min, gap_max = PACINGS[pacing]
        before = sub.count(FLOOR_TOPIC)
        self.stdin.write(f"{count // burst} {burst} {gap_min} {gap_max}\n")
        self.stdin.flush()
        self.stdout.readline()
        sub.wait_count(FLOOR_TOPIC, before + count)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="events per pacing and side (default 1000)")
    parser.add_argument("--block", type=int, default=50, help="events per block; plugin and floor alternate (50)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured events per side first (50)")
    parser.add_argument("--quick", action="store_true", help="a short run: -n 200 --warmup 20")
    parser.add_argument("--keep", action="store_true", help="keep the OctoPrint basedir (logs) afterwards")
    args = parser.parse_args()
    if args.quick:
        args.n, args.warmup = 200, 20
    args.block = max(BURST, args.block // BURST * BURST)
    args.n = max(args.block, args.n // args.block * args.block)
    args.warmup = max(BURST, args.warmup // BURST * BURST)

    work = Path(tempfile.mkdtemp(prefix="printmesh-bench-events-"))
    broker = LocalBroker(kind="mosquitto").start()
    print(machine_facts())
    server = start(
        work / "octoprint",
        {"node_id": NODE, "mqtt": {"host": "127.0.0.1", "port": broker.port}},
        config={"serial": {"log": False}},
        single_file_plugins={"bench_probe": probe_source(record_events=True)},
    )
    sub: Subscriber | None = None
    floor: Floor | None = None
    results: dict[str, dict[str, list[float]]] = {}
    try:
        server.wait_operational()
        if not plugin_loaded(server):
            raise SystemExit("the printmesh plugin did not start")
        sub = Subscriber(broker.host, broker.port)
        # a Dwelling message of the plugin's, to give the floor the same size
        server.api("POST", "/api/printer/command", {"commands": ["G4 P0"]})
        sub.wait_count(EVENT_TOPIC, 1)
        size = next(len(p) for _, p in reversed(sub.received[EVENT_TOPIC]) if b"Dwelling" in p)
        floor = Floor(broker.host, broker.port, size)
        for pacing in PACINGS:
            # warm-up, then forget everything so far
            drive_octoprint(server, sub, args.warmup, pacing)
            floor.drive(sub, args.warmup, pacing)
            time.sleep(0.5)
            probe(server, clear=True)
            with sub.cond:
                for values in sub.received.values():
                    values.clear()
            for b in range(args.n // args.block):
                for side in ("plugin", "floor") if b % 2 == 0 else ("floor", "plugin"):
                    if side == "plugin":
                        drive_octoprint(server, sub, args.block, pacing)
                    else:
                        floor.drive(sub, args.block, pacing)
            time.sleep(0.5)
            results[pacing] = split(probe(server, clear=True), sub)
            with sub.cond:
                for values in sub.received.values():
                    values.clear()
    finally:
        if floor is not None:
            floor.close()
        if sub is not None:
            sub.close()
        server.stop()
        broker.stop()
        if args.keep:
            print(f"# basedir kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    report(results, args, size)
    return 0


def split(recorded: dict[str, Any], sub: Subscriber) -> dict[str, list[float]]:
    """Match the nth fired Dwelling with the nth delivered and the nth received (all FIFO)."""
    fired = [t for e, t in recorded["fired"] if e == "Dwelling"]
    delivered = [t for e, t in recorded["delivered"] if e == "Dwelling"]
    received = [(at, json.loads(p)) for at, p in sub.received[EVENT_TOPIC]]
    received = [(at, doc) for at, doc in received if doc.get("event") == "Dwelling"]
    floor = [(at, json.loads(p)) for at, p in sub.received[FLOOR_TOPIC]]
    if not len(fired) == len(delivered) == len(received):
        raise SystemExit(f"unmatched: fired {len(fired)}, on_event {len(delivered)}, received {len(received)}")
    late = sum(1 for d, (_, doc) in zip(delivered, received, strict=True) if doc["ts"] < d - 0.0006)
    if late:
        print(f"warning: {late} events stamped by printmesh before the probe's on_event: the probe did not run first")
    ms = 1000.0
    return {
        "fire -> on_event": [(d - f) * ms for f, d in zip(fired, delivered, strict=True)],
        "on_event -> received": [(r - d) * ms for d, (r, _) in zip(delivered, received, strict=True)],
        "payload ts -> received": [(r - doc["ts"]) * ms for r, doc in received],
        "total: fire -> received": [(r - f) * ms for f, (r, _) in zip(fired, received, strict=True)],
        "floor: publish -> received": [(r - doc["ts"]) * ms for r, doc in floor],
    }


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace, size: int) -> None:
    print(
        f"# events: {args.n} per pacing and side (+{args.warmup} warm-up), blocks of {args.block} alternating"
        f" plugin/floor; QoS 1, {size}-byte messages; spaced = 1 event then 10-30 ms,"
        f" burst = {BURST} back to back then 100-200 ms"
    )
    print(f"{'pacing':8s} {'segment':28s} {'n':>6s} {'p50 ms':>8s} {'p90 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    for pacing, segments in results.items():
        for name, values in segments.items():
            print(
                f"{pacing:8s} {name:28s} {len(values):6d} {percentile(values, 50):8.3f} {percentile(values, 90):8.3f}"
                f" {percentile(values, 99):8.3f} {max(values):8.3f}"
            )
    print()
    for pacing, segments in results.items():
        floor = segments["floor: publish -> received"]
        for name in ("on_event -> received", "total: fire -> received"):
            values = segments[name]
            print(
                f"{pacing}: {name} / floor: p50 {percentile(values, 50) / percentile(floor, 50):.2f}x,"
                f" p99 {percentile(values, 99) / percentile(floor, 99):.2f}x"
                f"  (+{percentile(values, 50) - percentile(floor, 50):.3f} ms at p50)"
            )
    if "burst" in results:
        segments = results["burst"]
        print(f"burst, p50 ms by position in the burst of {BURST} (1st .. {BURST}th):")
        for name in ("fire -> on_event", "on_event -> received", "floor: publish -> received"):
            values = segments[name]
            by = [percentile(values[i::BURST], 50) for i in range(BURST)]
            print(f"  {name:28s}" + "".join(f"{x:7.2f}" for x in by))
    print("note: payload ts is rounded to the ms by the plugin (+-0.5 ms); the other stamps are time.time() floats")


if __name__ == "__main__":
    raise SystemExit(main())
