"""`printmesh up`'s supervisor without processes: deaths, backoff, reset after a stable run, config errors."""

from __future__ import annotations

from typing import Any

from printmesh_devkit.supervise import Supervisor, describe


class FakeProcess:
    """What the supervisor uses of a Popen: ``poll`` (None while running), ``send_signal``, ``wait``."""

    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.returncode = -signum

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode

    def kill(self) -> None:
        self.returncode = -9


class Rig:
    def __init__(self) -> None:
        self.now = 0.0
        self.said: list[str] = []
        self.started: list[FakeProcess] = []
        self.sup = Supervisor(self.said.append, clock=lambda: self.now)

    def spawn(self) -> Any:
        process = FakeProcess()
        self.started.append(process)
        return process

    def at(self, t: float) -> None:
        self.now = t
        self.sup.poll()


def test_a_dead_child_restarts_with_doubling_backoff_capped_at_30_s():
    r = Rig()
    r.sup.add("coordinator", r.spawn)
    delays = []
    for _ in range(7):
        r.started[-1].returncode = 1
        r.at(r.now + 0.5)
        delays.append(r.said[-1])
        before = len(r.started)
        r.at(r.now + 100)
        assert len(r.started) == before + 1, "started again once its delay passed"
    assert [d.rsplit("in ", 1)[1] for d in delays] == ["1 s", "2 s", "4 s", "8 s", "16 s", "30 s", "30 s"]
    assert delays[0] == "printmesh up: coordinator exited with 1; restarting in 1 s"


def test_no_restart_before_the_delay_and_reset_after_a_stable_minute():
    r = Rig()
    r.sup.add("host", r.spawn)
    r.started[-1].returncode = -9
    r.at(1.0)
    assert r.said[-1] == "printmesh up: host was killed by SIGKILL; restarting in 1 s"
    r.at(1.5)
    assert len(r.started) == 1, "not before its delay"
    r.at(2.0)
    assert len(r.started) == 2 and r.said[-1] == "printmesh up: host restarted (restart #1)"
    r.started[-1].returncode = 1
    r.at(3.0)
    assert r.said[-1].endswith("restarting in 2 s")
    r.at(5.0)
    r.at(70.0)  # ran 65 s
    r.started[-1].returncode = 1
    r.at(71.0)
    assert r.said[-1].endswith("restarting in 1 s"), "a stable run starts the backoff over"


def test_a_config_error_is_not_restarted_and_stop_ends_everything():
    r = Rig()
    r.sup.add("sensors", r.spawn)
    r.sup.add("camera", r.spawn)
    r.started[0].returncode = 2
    r.at(1.0)
    r.at(100.0)
    assert len(r.started) == 2 and "invalid config" in r.said[-1] and r.sup.alive()
    r.sup.stop()
    assert r.started[1].returncode is not None and not r.sup.alive()
    r.started[1].returncode = 1
    r.at(200.0)
    assert len(r.started) == 2, "nothing restarts after stop"


def test_describe():
    assert describe(0) == "exited with 0" and describe(-15) == "was killed by SIGTERM"
