"""Keeping ``printmesh up``'s children alive: a child that dies is started again, with backoff.

One message must never take a component down, but if something does (a bug, the OOM killer,
a stray ``kill -9``), the mesh that ``up`` runs should not silently lose its coordinator.
The delay before a restart starts at ``min_delay`` and doubles with each death up to
``max_delay``; a child that ran ``stable`` seconds before dying starts again from
``min_delay``. Every death and restart is said on ``up``'s output. A child that exits with
the config-error status (2) is not restarted: its config will not be any better next time.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

EXIT_CONFIG = 2  # printmesh_core.cli: invalid settings


def describe(returncode: int) -> str:
    """'exited with 1', or 'was killed by SIGKILL'."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with {returncode}"


@dataclass
class Child:
    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = 0.0  # the next restart's delay
    restart_at: float | None = None  # dead, waiting to be started again
    restarts: int = 0
    given_up: bool = False


class Supervisor:
    """Call ``poll`` often (``up`` does, from its wait loop); ``stop`` ends every child."""

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        min_delay: float = 1.0,
        max_delay: float = 30.0,
        stable: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.say = say
        self.min_delay, self.max_delay, self.stable = min_delay, max_delay, stable
        self.clock = clock
        self.children: list[Child] = []

    def add(self, name: str, start: Callable[[], subprocess.Popen[bytes]]) -> Child:
        child = Child(name, start, delay=self.min_delay)
        self._start(child)
        self.children.append(child)
        return child

    def _start(self, child: Child) -> None:
        child.process, child.started, child.restart_at = child.start(), self.clock(), None

    def poll(self) -> None:
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)
                self.say(f"printmesh up: {child.name} restarted (restart #{child.restarts})")
                continue
            process = child.process
            if process is None or child.restart_at is not None or child.given_up:
                continue
            code = process.poll()
            if code is None:
                continue
            if code == EXIT_CONFIG:
                child.given_up = True
                self.say(f"printmesh up: {child.name} {describe(code)} (invalid config); not restarting it")
                continue
            if now - child.started >= self.stable:
                child.delay = self.min_delay  # it had been stable: this is a new streak
            self.say(f"printmesh up: {child.name} {describe(code)}; restarting in {child.delay:g} s")
            child.restart_at = now + child.delay
            child.delay = min(self.max_delay, child.delay * 2)

    def alive(self) -> bool:
        """Some child runs or will be restarted."""
        return any(not c.given_up for c in self.children)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to every running child, then SIGKILL to any still running after ``timeout``."""
        for child in self.children:
            child.restart_at = None
            child.given_up = True
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
