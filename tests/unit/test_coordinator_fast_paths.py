"""The coordinator's shortcuts for a fleet: each must decide exactly what the whole path decides.

* a repeated hold status (``busy``/``held`` around every move) skips the whole decision;
* the loop keeps every machine's next deadline in ``timers.Deadlines`` instead of asking each one;
* the plan is built once per printer.
"""

from __future__ import annotations

import random
from dataclasses import replace

from coordinator_support import HOLDER, Sim, held, hold_status

from printmesh_coordinator import machine
from printmesh_coordinator.machine import decide, next_deadline
from printmesh_coordinator.messages import HoldStatusSeen, SendMove, Tick
from printmesh_coordinator.state import MachineState
from printmesh_coordinator.timers import Deadlines
from printmesh_core.models.printer import HoldPlan


def full_decision(state: MachineState, message: HoldStatusSeen, now: float) -> machine.Step:
    """``decide`` without the shortcut."""
    original = machine._hold_status_only
    machine._hold_status_only = lambda *a: None  # type: ignore[assignment]
    try:
        return decide(state, message, now)
    finally:
        machine._hold_status_only = original


def running() -> Sim:
    sim = Sim().ready()
    sim.feed(held(ts=1000.0), dt=1)
    assert sim.state.run is not None and sim.of(SendMove)
    return sim


def test_a_repeated_hold_status_decides_what_the_whole_decision_decides() -> None:
    sim = running()
    rng = random.Random(5)
    statuses = [
        hold_status("busy", ts=1001.0, hold_id=1),
        hold_status("held", ts=1001.5, hold_id=1),
        hold_status("held", ts=1002.0, hold_id=1, armed=HoldPlan(every=2)),  # another plan: re-arm
        hold_status("held", ts=1002.0, hold_id=1, holder="other/coordinator"),
        hold_status("idle", ts=1003.0),  # our hold is over
        hold_status("held", ts=1003.0, hold_id=2),  # another hold
        hold_status("idle", ts=10.0),  # an old idle, from before our hold
        HoldStatusSeen(hold_status("held", ts=1004.0, hold_id=1).status, holder_online=True),
    ]
    shortcuts = 0
    for _ in range(300):
        message = rng.choice(statuses)
        now = sim.now + rng.choice([0.0, 0.5, 30.0, 400.0])  # 30 s, 400 s: past a move's and the hold's deadline
        fast = decide(sim.state, message, now)
        whole = full_decision(sim.state, message, now)
        assert fast[0] == whole[0] and fast[1] == whole[1], message
        shortcuts += machine._hold_status_only(sim.state, message, now) is not None
        if rng.random() < 0.1:
            sim.state = fast[0]
    assert shortcuts > 50  # the shortcut was taken, not only the whole path


def test_the_shortcut_keeps_the_newest_status_and_says_nothing() -> None:
    sim = running()
    status = hold_status("busy", ts=1001.0, hold_id=1)
    state, commands = decide(sim.state, status, sim.now + 0.01)
    assert commands == [] and state.hold_status == status.status and state.run == sim.state.run


def test_an_idle_status_during_a_hold_still_ends_it() -> None:
    sim = running()
    sim.feed(hold_status("busy", ts=1001.0, hold_id=1), dt=0.01)
    sim.feed(hold_status("idle", ts=1002.0), dt=0.01)
    assert sim.state.run is None or sim.state.run.phase in ("releasing", "finishing")


def test_the_plan_is_built_once() -> None:
    setup = Sim().state.setup
    assert setup.plan is setup.plan and setup.plan == HoldPlan(every=5)


def test_deadlines_come_due_in_order_once_each_and_follow_every_change() -> None:
    d = Deadlines()
    assert d.earliest() is None and d.pop_due(1e9) == []
    d.set("a", 10.0)
    d.set("b", 5.0)
    d.set("c", 7.0)
    d.set("b", 12.0)  # moved later: its old entry is out of date
    d.set("c", None)  # nothing due any more
    assert d.earliest() == 10.0 and len(d) == 2
    assert d.pop_due(9.9) == []
    assert d.pop_due(11.0) == ["a"] and d.earliest() == 12.0
    assert d.pop_due(11.0) == []  # forgotten until set again
    d.set("a", 3.0)
    assert d.pop_due(20.0) == ["a", "b"] and d.earliest() is None and len(d) == 0


def test_deadlines_agree_with_asking_every_machine_and_stay_small() -> None:
    rng = random.Random(11)
    d = Deadlines()
    truth: dict[str, float] = {}
    for step in range(20000):
        name = f"p{rng.randrange(50)}"
        value = None if rng.random() < 0.1 else float(rng.randrange(step, step + 500))
        d.set(name, value)
        if value is None:
            truth.pop(name, None)
        else:
            truth[name] = value
        if step % 97 == 0:
            now = float(step)
            due = sorted(n for n, t in truth.items() if t <= now)
            assert sorted(d.pop_due(now)) == due
            for n in due:
                del truth[n]
        assert d.earliest() == min(truth.values(), default=None)
        assert len(d._heap) <= 4 * len(truth) + 65


def test_a_tick_at_the_kept_deadline_moves_the_machine_on() -> None:
    sim = running()
    d = Deadlines()
    d.set("p", next_deadline(sim.state))
    due = d.earliest()
    assert due is not None and d.pop_due(due) == ["p"]
    state, commands = decide(sim.state, Tick(), due)
    assert state != sim.state and commands  # the move's timeout: the hold fails and is released
    assert replace(state, run=None).setup is sim.state.setup and HOLDER
