"""Repeated request ids: run once, and every repeat gets the first answer (printmesh_core.repeats)."""

from printmesh_core.models import CommandResponse
from printmesh_core.repeats import KEPT_BYTES, WAITING, Dedupe, Running, kept


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def ok(rid: str, **data: object) -> CommandResponse:
    return CommandResponse(id=rid, ok=True, data=dict(data))


def test_a_repeat_while_running_waits_for_the_answer_and_a_later_one_gets_it_again():
    d: Dedupe[str] = Dedupe(window=60, clock=FakeClock())
    assert d.claim(("move", "1"), "first") is None
    assert d.claim(("move", "1"), "repeat 1") == Running(queued=True)
    assert d.claim(("move", "2"), "other") is None, "another id is another request"
    assert d.claim(("hold", "1"), "other command") is None, "the same id on another command too"
    answer = ok("1", x=10.0)
    assert d.answered(("move", "1"), answer) == ["repeat 1"], "the waiting repeat is answered now"
    assert d.claim(("move", "1"), "repeat 2") == answer, "a later repeat gets the first answer"
    assert d.answered(("move", "2"), ok("2")) == []


def test_repeats_waiting_for_one_request_are_bounded():
    d: Dedupe[int] = Dedupe(window=60, clock=FakeClock())
    assert d.claim(("c", "1"), 0) is None
    results = [d.claim(("c", "1"), i) for i in range(1, WAITING + 3)]
    assert results[:WAITING] == [Running(queued=True)] * WAITING
    assert results[WAITING:] == [Running(queued=False)] * 2
    assert d.answered(("c", "1"), ok("1")) == list(range(1, WAITING + 1))


def test_a_request_that_did_not_run_is_forgotten_so_a_retry_with_its_id_runs():
    d: Dedupe[str] = Dedupe(window=60, clock=FakeClock())
    assert d.claim(("c", "1"), "first") is None
    assert d.claim(("c", "1"), "repeat") == Running(queued=True)
    assert d.forget(("c", "1")) == ["repeat"], "the repeat is told too (busy)"
    assert d.claim(("c", "1"), "retry") is None
    assert d.forget(("c", "unknown")) == []


def test_the_window_forgets_answers_too():
    clock = FakeClock()
    d: Dedupe[str] = Dedupe(window=60, clock=clock)
    assert d.claim(("c", "1")) is None
    d.answered(("c", "1"), ok("1"))
    clock.t += 59
    assert isinstance(d.claim(("c", "1")), CommandResponse)
    clock.t += 2
    assert d.claim(("c", "1")) is None, "past the window it is a new request"
    clock.t += 61
    assert d.answered(("c", "1"), ok("1")) == [], "an answer for a request forgotten meanwhile is not kept"
    assert d.claim(("c", "1")) is None


def test_a_large_answer_is_not_kept_whole_for_repeats():
    small = ok("1", text="x" * 100)
    assert kept(small) is small
    large = ok("2", text="x" * (KEPT_BYTES + 1))
    replaced = kept(large)
    assert not replaced.ok and replaced.id == "2" and replaced.error is not None
    assert replaced.error.code == "repeat_not_kept" and "too large" in replaced.error.message
    d: Dedupe[str] = Dedupe(window=60, clock=FakeClock())
    d.claim(("c", "2"), "first")
    d.claim(("c", "2"), "repeat")
    assert d.answered(("c", "2"), large) == ["repeat"]
    later = d.claim(("c", "2"), "later")
    assert isinstance(later, CommandResponse)  # built anew: its ts may be a millisecond later than ``replaced``'s
    assert later.model_dump(exclude={"ts"}) == replaced.model_dump(exclude={"ts"})


def test_window_zero_turns_repeats_off():
    d: Dedupe[str] = Dedupe(window=0)
    assert d.claim(("c", "1"), "a") is None and d.claim(("c", "1"), "b") is None
