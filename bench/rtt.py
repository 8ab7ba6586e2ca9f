"""Command round trip: the printmesh runtime vs bare paho-mqtt, same broker, same run.

One mosquitto (printmesh_devkit.broker.LocalBroker) on a loopback port serves every variant:

* ``printmesh pool``   MqttRuntime + CommandServer, a normal ``Command`` (runs on the
                       server's thread pool), called by a second MqttRuntime + Requester.call().
* ``printmesh inline`` the same server and requester, a ``Command(..., inline=True)``
                       (answers from the responder's network thread).
* ``bare paho``        two bare paho-mqtt 2.x clients (MQTT 5, QoS 1, TCP_NODELAY, loop_start)
                       doing the same JSON request -> JSON response with a matching id on the
                       same topic pattern (``<root>/<node>/<component>/cmd|res/<name>``).

The variants run in small blocks whose order rotates, so machine noise hits them equally.
Besides wall-clock latency, the process CPU time (all client threads of this process, not
the broker) is recorded per round trip. Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/rtt.py [-n 1000] [--warmup 100] [--block 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt import __version__ as paho_version
from paho.mqtt.enums import CallbackAPIVersion

from printmesh_core.commands import Command, CommandServer
from printmesh_core.config import MqttConfig
from printmesh_core.models.envelope import CommandRequest
from printmesh_core.mqtt import MqttRuntime, Presence
from printmesh_core.requests import Requester, RequestTimeout
from printmesh_core.topics import ComponentTopics, Topics
from printmesh_devkit.broker import LocalBroker, mosquitto_path

NODE = "benchnode"
COMPONENT = "echo"
PM_ROOT = "printmesh"
BARE_ROOT = "bare"
TEXT = "hello printmesh"


# ----------------------------------------------------------------- printmesh side
class EchoRequest(CommandRequest):
    text: str = ""


def echo(request: EchoRequest) -> dict[str, Any]:
    return {"text": request.text}


class PrintmeshPair:
    """A responder (runtime + CommandServer) and a requester (runtime + Requester)."""

    def __init__(self, host: str, port: int) -> None:
        cfg = MqttConfig(host=host, port=port)
        self.topics = Topics(PM_ROOT, NODE)
        self.target: ComponentTopics = self.topics.component(COMPONENT)
        presence = Presence(self.target.status, COMPONENT, "bench")
        self.responder = MqttRuntime(cfg, PM_ROOT, "bench-pm-responder", presence)
        self.server = CommandServer(
            self.responder,
            self.topics,
            self.target,
            [Command("echo", EchoRequest, echo), Command("echo_inline", EchoRequest, echo, inline=True)],
        )
        self.server.attach()  # subscribed inside the connect callback
        self.responder.start()
        self.caller = MqttRuntime(cfg, PM_ROOT, "bench-pm-requester")
        self.caller.start()
        for rt in (self.responder, self.caller):
            if not rt.wait_connected(10):
                raise SystemExit("printmesh runtime did not connect")
        self.requester = Requester(self.caller)
        for name in ("echo", "echo_inline"):
            self.requester.watch(self.target, name)
            self._until_answered(name)

    def _until_answered(self, name: str) -> None:
        """The responder's subscription is sent from its connect callback; wait until it is live."""
        for _ in range(20):
            try:
                self.requester.call(self.target, name, {"text": TEXT}, timeout=0.5)
                return
            except RequestTimeout:
                continue
        raise SystemExit(f"printmesh responder never answered {name}")

    def call(self, name: str) -> None:
        response = self.requester.call(self.target, name, {"text": TEXT}, timeout=10)
        if not response.ok:
            raise SystemExit(f"printmesh {name} failed: {response.error}")

    def close(self) -> None:
        self.caller.stop()
        self.responder.stop()
        self.server.close()


# ---------------------------------------------------------------------- bare side
def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _bare_client(client_id: str, host: str, port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_socket_open = _nodelay
    connected = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: connected.set()
    client.connect(host, port, keepalive=30, clean_start=True)
    client.loop_start()
    if not connected.wait(10):
        raise SystemExit(f"bare client {client_id} did not connect")
    return client


def _subscribe(client: paho.Client, topic_filter: str) -> None:
    acked = threading.Event()
    client.on_subscribe = lambda c, u, mid, reasons, p: acked.set()
    client.subscribe(topic_filter, qos=1)
    if not acked.wait(10):
        raise SystemExit(f"no SUBACK for {topic_filter}")


class BarePair:
    """Two bare paho clients: JSON request on .../cmd/echo, JSON response with the same id on .../res/echo."""

    def __init__(self, host: str, port: int) -> None:
        self.base = f"{BARE_ROOT}/{NODE}/{COMPONENT}"
        self.responder = _bare_client("bench-bare-responder", host, port)
        self.responder.on_message = self._answer
        _subscribe(self.responder, f"{self.base}/cmd/+")
        self.caller = _bare_client("bench-bare-requester", host, port)
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.caller.on_message = self._on_response
        _subscribe(self.caller, f"{self.base}/res/echo")

    def _answer(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        name = msg.topic.rsplit("/", 1)[-1]
        response = {"ts": round(time.time(), 3), "id": doc["id"], "ok": True, "data": {"text": doc["text"]}}
        response["error"] = None
        client.publish(f"{self.base}/res/{name}", json.dumps(response), qos=1)

    def _on_response(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        with self._lock:
            future = self._pending.get(doc.get("id", ""))
        if future is not None and not future.done():
            future.set_result(doc)

    def call(self) -> None:
        rid = uuid.uuid4().hex
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._pending[rid] = future
        try:
            self.caller.publish(f"{self.base}/cmd/echo", json.dumps({"text": TEXT, "id": rid}), qos=1)
            if not future.result(10)["ok"]:
                raise SystemExit("bare echo failed")
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    def close(self) -> None:
        for client in (self.caller, self.responder):
            client.disconnect()
            client.loop_stop()


# ------------------------------------------------------------------------ broker
class NoDelayBroker(LocalBroker):
    """LocalBroker plus ``set_tcp_nodelay true`` (mosquitto's default is false: Nagle on its sockets)."""

    def _command(self) -> list[str]:
        command = super()._command()
        conf = self._dir / "mosquitto.conf"
        conf.write_text(conf.read_text() + "set_tcp_nodelay true\n")
        return command


# ------------------------------------------------------------------------ figures
def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, q in [0, 100]."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


COLUMNS = ("p50", "p90", "p99", "mean", "max", "cpu")


def summary(wall_ns: list[int], cpu_ns: int) -> dict[str, float]:
    ms = sorted(v / 1e6 for v in wall_ns)
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms),
        "max": ms[-1],
        "cpu": cpu_ns / len(ms) / 1e6,
    }


def mosquitto_version() -> str:
    exe = mosquitto_path()
    if exe is None:
        return "?"
    out = subprocess.run([exe, "-h"], capture_output=True, text=True, check=False).stdout.split()
    return out[2] if len(out) > 2 else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="measured round trips per variant (default 1000)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured round trips per variant first (100)")
    parser.add_argument("--block", type=int, default=20, help="round trips per block; block order rotates (20)")
    parser.add_argument(
        "--only", choices=["pool", "inline", "bare"], action="append", help="run only these variants (for profiling)"
    )
    parser.add_argument(
        "--broker",
        choices=["as-shipped", "nodelay"],
        default="as-shipped",
        help="as-shipped: LocalBroker's mosquitto.conf unchanged (default); nodelay: add 'set_tcp_nodelay true'",
    )
    args = parser.parse_args()

    broker_cls = NoDelayBroker if args.broker == "nodelay" else LocalBroker
    broker = broker_cls(kind="mosquitto").start()
    pm = PrintmeshPair(broker.host, broker.port)
    bare = BarePair(broker.host, broker.port)
    variants: dict[str, Callable[[], None]] = {
        "printmesh pool": lambda: pm.call("echo"),
        "printmesh inline": lambda: pm.call("echo_inline"),
        "bare paho": bare.call,
    }
    keys = {"pool": "printmesh pool", "inline": "printmesh inline", "bare": "bare paho"}
    if args.only:
        variants = {keys[k]: variants[keys[k]] for k in args.only}
    names = list(variants)
    try:
        for _ in range(args.warmup):
            for fn in variants.values():
                fn()
        wall: dict[str, list[int]] = {n: [] for n in names}
        cpu: dict[str, int] = dict.fromkeys(names, 0)
        blocks = -(-args.n // args.block)
        for b in range(blocks):
            order = names[b % len(names) :] + names[: b % len(names)]
            count = min(args.block, args.n - b * args.block)
            for name in order:
                fn, out = variants[name], wall[name]
                c0 = time.process_time_ns()
                for _ in range(count):
                    t0 = time.perf_counter_ns()
                    fn()
                    out.append(time.perf_counter_ns() - t0)
                cpu[name] += time.process_time_ns() - c0
    finally:
        pm.close()
        bare.close()
        broker.stop()

    stats = {n: summary(wall[n], cpu[n]) for n in names}
    print(f"# rtt: {args.n} round trips per variant (+{args.warmup} warm-up), blocks of {args.block}, rotating order")
    print(f"# broker: {broker.kind} {mosquitto_version()} on {broker.host}:{broker.port}, config {args.broker}")
    print(
        f"# clients: MQTT 5, QoS 1, TCP_NODELAY, loop_start; python {platform.python_version()},"
        f" paho-mqtt {paho_version}, {os.cpu_count()} CPUs"
    )
    print("# cpu = this process's CPU time per round trip (requester + responder threads; broker excluded)")
    print(f"{'variant':<18}" + "".join(f"{c + ' ms':>9}" for c in COLUMNS))
    for name in names:
        print(f"{name:<18}" + "".join(f"{stats[name][c]:>9.3f}" for c in COLUMNS))
    if "bare paho" not in stats:
        return 0
    base = stats["bare paho"]
    print()
    print(f"{'ratio vs bare':<18}" + "".join(f"{c:>9}" for c in COLUMNS))
    for name in names:
        if name != "bare paho":
            print(f"{name:<18}" + "".join(f"{stats[name][c] / base[c]:>8.2f}x" for c in COLUMNS))
    print()
    if base["p50"] > 20 and args.broker == "as-shipped":
        print(
            "note: ~40 ms on every variant is Nagle's algorithm on the broker's sockets meeting delayed ACKs"
            " (mosquitto's set_tcp_nodelay defaults to false); rerun with --broker nodelay"
        )
    print("goal: printmesh/bare p50 and p99 <= 1.3x, printmesh p50 < 1 ms")
    for name in names:
        if name != "bare paho":
            s = stats[name]
            checks = {
                "p50 ratio": s["p50"] / base["p50"] <= 1.3,
                "p99 ratio": s["p99"] / base["p99"] <= 1.3,
                "p50 < 1 ms": s["p50"] < 1.0,
            }
            verdict = ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in checks.items())
            print(f"  {name}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
