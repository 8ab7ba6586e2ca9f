"""`printmesh up` restarts a child that dies, with backoff, and says so: a real coordinator killed by SIGKILL."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import psutil
from conftest import Observer

from printmesh_devkit.broker import LocalBroker

NODE = "uprestart"


def _lines(stream) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return out


def _expect(lines: queue.Queue[str], text: str, timeout: float, seen: list[str]) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.05, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if text in line:
            return time.monotonic()
    raise AssertionError(f"{text!r} not said within {timeout}s; output: {seen}")


def _coordinator(up: subprocess.Popen[str]) -> psutil.Process:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for child in psutil.Process(up.pid).children():
            try:
                if child.cmdline()[3:4] == ["coordinator"]:  # python -m printmesh_core.cli coordinator
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise AssertionError("no coordinator child")


def test_up_restarts_a_coordinator_killed_by_sigkill_with_backoff(broker: LocalBroker, observer: Observer, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update(PRINTMESH_MQTT__HOST=broker.host, PRINTMESH_MQTT__PORT=str(broker.port), PRINTMESH_NODE_ID=NODE)
    up = subprocess.Popen(
        [sys.executable, "-m", "printmesh_core.cli", "up", "--no-view"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    status = f"printmesh/{NODE}/coordinator/status"
    seen: list[str] = []
    try:
        lines = _lines(up.stdout)
        observer.topic(status, where=lambda d: d["state"] == "online", timeout=30)
        first = _coordinator(up)
        mark = observer.mark()
        first.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _expect(lines, "coordinator was killed by SIGKILL; restarting in 1 s", 10, seen)
        _expect(lines, "coordinator restarted (restart #1)", 10, seen)
        assert time.monotonic() - killed >= 0.9, "it waited its delay"
        observer.topic(status, after=mark, where=lambda d: d["state"] == "online", timeout=30)
        second = _coordinator(up)
        assert second.pid != first.pid
        second.send_signal(signal.SIGKILL)
        _expect(lines, "coordinator was killed by SIGKILL; restarting in 2 s", 10, seen)
        _expect(lines, "coordinator restarted (restart #2)", 10, seen)
        assert up.poll() is None, "up itself carries on"
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0, seen
    assert not [c for c in psutil.Process().children(recursive=True) if "printmesh_core.cli" in " ".join(c.cmdline())]
