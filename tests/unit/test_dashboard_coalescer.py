"""What the Dashboard sends, and when: patches, at most 2 per second per section, none unwatched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from octoprint_printmesh.dashboard.coalescer import Coalescer, Viewers, diff
from octoprint_printmesh.dashboard.service import Dashboard, Urls

URLS = Urls(preview=lambda n, c: f"pv/{n}/{c}", image=lambda n, i: f"im/{n}/{i}")


def test_a_patch_holds_only_what_changed_and_what_went():
    assert diff(None, {"a": 1}) == {"a": 1}
    assert diff({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5}) == {"b": 5, "c": None}
    c = Coalescer()
    c.mark({"k"})
    assert c.take("k", {"a": 1, "b": 2}, now=0.0) == {"a": 1, "b": 2}
    c.mark({"k"})
    assert c.take("k", {"a": 1, "b": 2}, now=1.0) is None  # nothing changed: nothing sent
    assert c.take("k", {"a": 1, "b": 3}, now=2.0) == {"b": 3}
    assert c.take("k", None, now=3.0) == {} and "k" not in c.sent  # the section is gone


def test_at_most_one_update_per_half_second_per_section():
    c = Coalescer(interval=0.5)
    c.mark({"a", "b"})
    assert c.due(10.0) == ["a", "b"]
    c.take("a", {"v": 1}, 10.0)
    c.take("b", {"v": 1}, 10.0)
    c.mark({"a"})
    assert c.due(10.2) == [] and c.next_due(10.2) == pytest.approx(0.3)
    assert c.due(10.5) == ["a"]
    c.reset()
    assert not c.sent and c.next_due(0) is None


def test_sections_changing_at_different_times_go_out_together_twice_a_second_at_most():
    c = Coalescer(interval=0.5)
    c.mark({"a"})
    assert c.due(10.0) == ["a"]  # after a quiet spell: at once
    c.take("a", {"v": 1}, 10.0)
    c.mark({"b"})
    assert c.due(10.1) == []
    c.mark({"c"})
    assert c.due(10.3) == [] and c.next_due(10.3) == pytest.approx(0.2)
    assert c.due(10.5) == ["b", "c"]  # one message for both
    sends = 0
    for step in range(100):  # ten sections, each changing every 0.1 s, for 10 s
        now = 20.0 + step * 0.1
        c.mark({f"s{step % 10}"})
        sends += bool(c.due(now))
    assert sends <= 21


def test_viewers_expire_unless_they_announce_again():
    v = Viewers(ttl=30)
    assert v.touch("p1", 0) and not v.touch("p1", 10)
    assert v.active(39) and not v.active(41)


class FakeRuntime:
    def __init__(self) -> None:
        from printmesh_core.bounded import Evictions

        self.handlers: list[tuple[str, Any]] = []
        self.evictions = Evictions()

    def subscribe_relative(self, topic_filter: str, handler: Any, *, qos: int = 1) -> None:
        self.handlers.append((topic_filter, handler))

    def deliver(self, topic: str, payload: bytes, retain: bool = False) -> None:
        from printmesh_core.messages import Message
        from printmesh_core.routing import matches

        for topic_filter, handler in self.handlers:
            if matches(topic_filter, topic):
                handler(Message(f"printmesh/{topic}", payload, 1, retain))


SHELL = json.dumps({"name": "g", "exit_code": 0, "stdout": "SECRET-OUTPUT", "stderr": "", "truncated": False,
                    "duration": 0.1, "timed_out": False, "ts": 5.0}).encode()  # fmt: skip
HOST = json.dumps({"cpu": {"percent": 50.0, "per_core": [50.0], "count": 1}, "ts": 5.0}).encode()


def test_nothing_is_sent_without_a_viewer_and_shell_outputs_are_never_sent():
    runtime, sent = FakeRuntime(), []
    dash = Dashboard(runtime, "printmesh", "mk4", sent.append, URLS)  # type: ignore[arg-type]
    dash.subscribe()
    for topic_filter, _ in runtime.handlers:  # one subscription per watched route, from the contract
        assert topic_filter.count("/") >= 2
    runtime.deliver("pi/host/state", HOST)
    runtime.deliver("pi/host/command/g", SHELL)
    assert dash._step(100.0) is None and sent == []  # no page has the tab: nothing parsed, nothing sent
    assert dash.model.hosts == {}
    snapshot = dash.watch("page1", full=True)
    assert snapshot is not None and snapshot["sections"]["host:pi"]["cpu"] == 50.0
    assert "SECRET-OUTPUT" not in json.dumps(snapshot)
    runtime.deliver("pi/host/state", HOST.replace(b"50.0", b"70.0"))
    runtime.deliver("pi/host/command/g", SHELL.replace(b"5.0", b"6.0"))
    dash._step(dash.coalescer.last.get("host:pi", 0) + 1)
    assert len(sent) == 1 and sent[0]["dash"]["patch"]["host:pi"] == {"cpu": 70.0}
    assert "SECRET-OUTPUT" not in json.dumps(sent)
    assert dash.shell_outputs()[0]["stdout"] == "SECRET-OUTPUT"  # only through the permission-checked API


def test_capture_images_are_kept_for_the_grid_and_bounded():
    runtime = FakeRuntime()
    dash = Dashboard(runtime, "printmesh", "mk4", lambda m: None, URLS)  # type: ignore[arg-type]
    dash.subscribe()
    for i in range(70):
        runtime.deliver(f"cam/camera/bed/capture/c{i}", b"\xff\xd8jpeg%d" % i)
    assert dash.image("cam", "c0") is None and dash.image("cam", "c69") == b"\xff\xd8jpeg69"
    runtime.deliver("cam/camera/bed/preview", b"\xff\xd8preview")
    assert dash.preview("cam", "bed") == b"\xff\xd8preview"


def test_a_flood_of_invented_topics_and_cameras_stays_bounded_and_is_counted():
    from octoprint_printmesh.dashboard.service import PENDING_KEPT, PREVIEWS_KEPT

    runtime = FakeRuntime()
    dash = Dashboard(runtime, "printmesh", "mk4", lambda m: None, URLS)  # type: ignore[arg-type]
    dash.subscribe()
    for i in range(PENDING_KEPT + 500):  # nobody watches: nothing is parsed, and the backlog is capped
        runtime.deliver(f"fake{i}/host/state", HOST)
    for i in range(PREVIEWS_KEPT + 10):
        runtime.deliver(f"cam{i}/camera/bed/preview", b"\xff\xd8p%d" % i)
    assert len(dash._pending) == PENDING_KEPT
    assert dash.preview("cam0", "bed") is None and dash.preview(f"cam{PREVIEWS_KEPT + 9}", "bed") is not None
    assert runtime.evictions.by_table() == {
        "dashboard_pending": 500 + PREVIEWS_KEPT + 10,
        "dashboard_previews": 10,
    }  # previews queue a mark too
