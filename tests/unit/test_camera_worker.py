"""The camera worker without MQTT: a recording sink and scripted sources (queue bound, order,
shutdown, reopen pacing, a bug in a source, warm-up, preview pacing)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from printmesh_camera.config import CameraConfig
from printmesh_camera.jobs import CaptureJob
from printmesh_camera.sources.base import Frame, Source, SourceError
from printmesh_camera.worker import CameraWorker
from printmesh_core.models.camera import CaptureRequest, CaptureResult
from printmesh_core.models.envelope import CommandResponse


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.cond = threading.Condition()

    def _add(self, kind: str, value: Any) -> None:
        with self.cond:
            self.events.append((kind, value))
            self.cond.notify_all()

    def image(self, camera: str, capture_id: str, jpeg: bytes, correlation_data: bytes | None) -> str:
        self._add("image", capture_id)
        return f"test/{camera}/capture/{capture_id}"

    def preview(self, camera: str, jpeg: bytes) -> None:
        self._add("preview", len(jpeg))

    def availability(self, camera: str, online: bool, reason: str | None) -> None:
        self._add("availability", (online, reason))

    def captured(self, result: CaptureResult) -> None:
        self._add("captured", result.capture_id)

    def wait(self, predicate: Any, timeout: float = 5.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.events), timeout), self.events

    def of(self, kind: str) -> list[Any]:
        with self.cond:
            return [v for k, v in self.events if k == kind]


class Scripted(Source):
    """Reads block while ``gate`` is clear; ``fail_open`` / ``fail_read`` make them raise."""

    description = "scripted"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.opens = self.reads = 0
        self.fail_open: Exception | None = None
        self.fail_read: Exception | None = None

    def open(self) -> None:
        self.opens += 1
        if self.fail_open:
            raise self.fail_open

    def read(self, after: float, label: str | None = None) -> Frame:
        self.gate.wait(10)
        self.reads += 1
        if self.fail_read:
            error, self.fail_read = self.fail_read, None
            raise error
        return Frame(np.full((48, 64, 3), self.reads % 256, np.uint8), time.time(), self.reads)

    def close(self) -> None:
        pass


def worker(source: Scripted, **camera: Any) -> tuple[CameraWorker, Recorder]:
    cfg = CameraConfig.model_validate({"name": "cam", "source": {"type": "synthetic"}, "preview": {"interval": 0},
                                       "health_interval": 0, **camera})  # fmt: skip
    sink = Recorder()
    return CameraWorker(cfg, sink, lambda config, hint: source), sink


def job(rid: str, answers: list[CommandResponse]) -> CaptureJob:
    return CaptureJob(CaptureRequest(id=rid), rid, time.monotonic(), answers.append)


def test_queue_is_bounded_served_in_order_and_everyone_is_answered():
    source = Scripted()
    w, sink = worker(source, max_pending=2)
    w.start()
    sink.wait(lambda ev: ("availability", (True, None)) in ev)
    source.gate.clear()
    answers: list[CommandResponse] = []
    assert w.submit(job("a", answers)) is None
    time.sleep(0.2)  # 'a' is being served, blocked in read
    assert w.submit(job("b", answers)) is None and w.submit(job("c", answers)) is None
    refused = w.submit(job("d", answers))
    assert refused is not None and refused.error and refused.error.code == "busy" and w.pending == 2
    source.gate.set()
    deadline = time.monotonic() + 5
    while len(answers) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [a.id for a in answers] == ["a", "b", "c"] and all(a.ok for a in answers)
    assert sink.of("image") == ["a", "b", "c"] == sink.of("captured")
    w.request_stop()
    w.join()


def test_stop_answers_what_is_still_queued():
    source = Scripted()
    w, sink = worker(source)
    w.start()
    sink.wait(lambda ev: ("availability", (True, None)) in ev)
    source.gate.clear()
    answers: list[CommandResponse] = []
    for rid in ("x", "y", "z"):
        w.submit(job(rid, answers))
    time.sleep(0.2)
    w.request_stop()
    source.gate.set()
    w.join()
    assert sorted(a.id or "" for a in answers) == ["x", "y", "z"]
    assert [a.error.code for a in answers if a.error] == ["shutting_down", "shutting_down"]
    late = w.submit(job("late", answers))
    assert late is not None and late.error and late.error.code == "shutting_down"


def test_requests_while_offline_reopen_at_most_once_per_min_delay():
    source = Scripted()
    source.fail_open = SourceError("no such device (unplugged?)")
    w, sink = worker(source, reopen={"min_delay": 0.5, "max_delay": 10})
    w.start()
    sink.wait(lambda ev: any(k == "availability" and v[1] and "unplugged" in v[1] for k, v in ev))
    answers: list[CommandResponse] = []
    for i in range(10):
        w.submit(job(f"r{i}", answers))
        time.sleep(0.03)
    deadline = time.monotonic() + 5
    while len(answers) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(answers) == 10 and not any(a.ok for a in answers)
    assert all("scripted: no such device (unplugged?)" in (a.error.message if a.error else "") for a in answers)
    assert source.opens <= 2, "requests must not hammer a broken source"
    source.fail_open = None
    time.sleep(0.5)
    w.submit(job("back", answers))
    deadline = time.monotonic() + 5
    while len(answers) < 11 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert answers[-1].id == "back" and answers[-1].ok
    w.request_stop()
    w.join()


def test_a_bug_in_a_source_fails_that_capture_only():
    source = Scripted()
    w, sink = worker(source)
    w.start()
    sink.wait(lambda ev: ("availability", (True, None)) in ev)
    answers: list[CommandResponse] = []
    source.fail_read = ZeroDivisionError("oops")
    w.submit(job("boom", answers))
    w.submit(job("fine", answers))
    deadline = time.monotonic() + 5
    while len(answers) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert answers[0].error and answers[0].error.code == "failed" and "ZeroDivisionError" in answers[0].error.message
    assert answers[1].ok and w.online
    w.request_stop()
    w.join()


def test_warmup_throws_frames_away_before_going_online():
    source = Scripted()
    w, sink = worker(source, warmup=0.3)
    started = time.monotonic()
    w.start()
    sink.wait(lambda ev: ("availability", (True, None)) in ev)
    online_after = time.monotonic() - started
    w.request_stop()
    w.join()
    assert 0.3 <= online_after < 2.0, "online only once the warm-up is over"
    assert 10 <= source.reads <= 40, "frames are read (at most 100/s for an instant source) and thrown away"


@pytest.mark.parametrize("interval", [0.1])
def test_previews_keep_their_pace_without_bursts(interval):
    source = Scripted()
    w, sink = worker(source, preview={"interval": interval, "width": 32})
    w.start()
    sink.wait(lambda ev: ("availability", (True, None)) in ev)
    time.sleep(0.55)
    source.gate.clear()  # a stall of 0.5 s
    time.sleep(0.5)
    count = len(sink.of("preview"))
    source.gate.set()
    time.sleep(0.25)
    w.request_stop()
    w.join()
    after = len(sink.of("preview")) - count
    assert 5 <= count <= 8 and after <= 4, (count, after)
