"""The coordinator's live state: a running hold's progress paced per printer, everything else at once."""

from __future__ import annotations

from coordinator_support import Sim, held

from printmesh_coordinator.messages import PublishState
from printmesh_coordinator.state_pacer import StatePacer
from printmesh_core.models.coordinator import CoordinatorState


def state(point: int, phase: str = "moving") -> CoordinatorState:
    fields = {"ts": 1.0, "printer": "octo", "phase": phase, "armed": True, "plan": {"every": 5}}
    return CoordinatorState.model_validate({**fields, "point": point, "points": 9, "images": point})


def test_progress_within_the_spacing_waits_and_only_the_newest_goes_out():
    sent: list[tuple[str, int | None]] = []
    pacer = StatePacer(lambda p, s: sent.append((p, s.point)), spacing=0.25)
    pacer.offer("octo", state(0), progress=True, now=10.0)  # nothing sent before: at once
    pacer.offer("octo", state(1), progress=True, now=10.05)
    pacer.offer("octo", state(2), progress=True, now=10.10)
    pacer.offer("mk4", state(7), progress=True, now=10.10)  # another printer is paced on its own
    assert sent == [("octo", 0), ("mk4", 7)]
    assert pacer.due() == 10.25
    pacer.flush(10.2)
    assert sent == [("octo", 0), ("mk4", 7)]
    pacer.flush(10.25)
    assert sent == [("octo", 0), ("mk4", 7), ("octo", 2)] and pacer.due() is None


def test_a_state_that_is_not_progress_goes_at_once_and_drops_the_waiting_one():
    sent: list[tuple[str, int | None]] = []
    pacer = StatePacer(lambda p, s: sent.append((p, s.point)), spacing=0.25)
    pacer.offer("octo", state(0), progress=True, now=10.0)
    pacer.offer("octo", state(5), progress=True, now=10.1)
    pacer.offer("octo", state(9, "armed"), progress=False, now=10.11)
    pacer.flush(11.0)
    assert sent == [("octo", 0), ("octo", 9)] and pacer.due() is None


def test_stopping_flushes_what_waits():
    sent: list[int | None] = []
    pacer = StatePacer(lambda p, s: sent.append(s.point), spacing=0.25)
    pacer.offer("octo", state(0), progress=True, now=10.0)
    pacer.offer("octo", state(3), progress=True, now=10.1)
    pacer.flush(10.1, everything=True)
    assert sent == [0, 3]


def test_the_machine_marks_only_a_running_holds_progress_as_progress():
    sim = Sim().ready()
    start = len(sim.out)
    sim.feed(held())
    sim.run_grid()
    sim.finish()
    states = [c for c in sim.out[start:] if isinstance(c, PublishState)]
    assert len(states) > 20, len(states)
    first, last = states[0], states[-1]
    assert not first.progress and first.state.layer is not None, "the hold starting: at once"
    assert not last.progress and last.state.layer is None, "the hold ended: at once"
    assert sum(s.progress for s in states) >= len(states) - 4, [(s.state.phase, s.progress) for s in states]


def test_a_failure_during_a_hold_is_news_not_progress():
    sim = Sim().ready()
    sim.feed(held())
    start = len(sim.out)
    sim.refuse(sim.pending_command())  # the first move refused: the grid is given up
    states = [c for c in sim.out[start:] if isinstance(c, PublishState)]
    failed = [s for s in states if s.state.failures or s.state.message]
    assert failed and not failed[0].progress, [(s.state.phase, s.state.message, s.progress) for s in states]
