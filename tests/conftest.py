"""Shared fixtures: a real mosquitto per test, an observer client, and agent processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from nats_cluster import NatsCluster

from printmesh_core.config import MqttConfig
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_devkit.broker import LocalBroker, mosquitto_path

REPO = Path(__file__).resolve().parent.parent
PRINTMESH = [sys.executable, "-m", "printmesh_core.cli"]
KINDS = ("unit", "integration")  # tests/<kind>/test_*.py, each marked with its kind


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its folder's kind; a test outside both folders is a mistake."""
    stray = []
    for item in items:
        kind = item.path.parent.name
        if kind in KINDS:
            item.add_marker(kind)
        else:
            stray.append(item.nodeid)
    if stray:
        raise pytest.UsageError(f"tests must live in tests/unit or tests/integration: {', '.join(sorted(stray))}")


def _refuse(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a unit test may not {what}: it belongs in tests/integration")

    return refuse


@pytest.fixture(autouse=True)
def _unit_isolation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit loop stays fast and self-contained: no process, no network connection."""
    if request.node.get_closest_marker("unit") is None:
        return
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
    monkeypatch.setattr(socket.socket, "connect", _refuse("open a network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse("open a network connection"))


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    """A real mosquitto on a free 127.0.0.1 port (no fallback: the tests need mosquitto)."""
    if mosquitto_path() is None:
        pytest.fail("mosquitto is not installed: run .ci/run or apt-get install mosquitto")
    with LocalBroker(kind="mosquitto") as b:
        yield b


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three NATS nodes on loopback (routes, JetStream, the MQTT gateway each), formed and answering MQTT."""
    with NatsCluster(tmp_path / "nats") as cluster:
        yield cluster


@dataclass
class Observer:
    """Records every message on the broker; waits for conditions with a deadline."""

    runtime: MqttRuntime
    messages: list[Message] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def _record(self, message: Message) -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 10.0, after: int = 0) -> Message:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages[after:]:
                    if predicate(m):
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({m.topic for m in self.messages})
                    raise AssertionError(f"no matching message within {timeout}s; topics seen: {seen}")
                self.cond.wait(remaining)

    def topic(
        self, topic: str, timeout: float = 10.0, after: int = 0, where: Callable[[Any], bool] | None = None
    ) -> Any:
        """The JSON payload of the next message on ``topic`` (optionally matching ``where``)."""

        def match(m: Message) -> bool:
            return m.topic == topic and (where is None or (bool(m.payload) and where(json.loads(m.payload))))

        return json.loads(self.wait_for(match, timeout, after).payload)

    def mark(self) -> int:
        with self.cond:
            return len(self.messages)

    def on(self, topic: str) -> list[Message]:
        with self.cond:
            return [m for m in self.messages if m.topic == topic]

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.runtime.publish_absolute(topic, payload, qos=1, retain=retain)


def make_runtime(broker: LocalBroker, client_id: str, protocol: str = "5") -> MqttRuntime:
    cfg = MqttConfig(host=broker.host, port=broker.port, protocol=protocol)  # type: ignore[arg-type]
    return MqttRuntime(cfg, root="printmesh", client_id=client_id)


@pytest.fixture
def observer(broker: LocalBroker) -> Iterator[Observer]:
    rt = make_runtime(broker, f"observer-{os.getpid()}")
    obs = Observer(rt)
    rt.subscribe("#", obs._record, qos=1)
    rt.start()
    assert rt.wait_connected(5), "observer could not connect"
    yield obs
    rt.stop()


@dataclass
class AgentProcess:
    proc: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def run_agent(broker: LocalBroker, tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(component: str, config: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> AgentProcess:
        cfg_path = tmp_path / f"{component}-{len(started)}.yaml"
        cfg_path.write_text(yaml.safe_dump(config or {}))
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
        full_env.update({"PRINTMESH_MQTT__HOST": broker.host, "PRINTMESH_MQTT__PORT": str(broker.port)})
        full_env.update(env or {})
        log_path = tmp_path / f"{component}-{len(started)}.log"
        with log_path.open("w") as logf:
            proc = subprocess.Popen(
                [*PRINTMESH, component, "--config", str(cfg_path)],
                env=full_env,
                stdout=logf,
                stderr=subprocess.STDOUT,
                text=True,
            )
        agent = AgentProcess(proc, log_path)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()
