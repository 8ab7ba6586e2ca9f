"""Which unanswered requests go out again after a reconnect (printmesh_core.requests.Correlator.resend)."""

from __future__ import annotations

from typing import Any

from printmesh_core.config import MqttConfig
from printmesh_core.models import CommandResponse
from printmesh_core.mqtt import Message
from printmesh_core.requests import Correlator
from printmesh_core.topics import Topics


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Runtime:
    """What the correlator uses of the runtime; ``sent`` records each publish."""

    def __init__(self) -> None:
        self.config = MqttConfig()
        self.root = "printmesh"
        self.flushed_on_connect: frozenset[str] = frozenset()
        self.sent: list[tuple[str, bytes]] = []
        self.hooks: list[Any] = []

    def subscribe_relative(self, topic_filter: str, handler: Any, *, qos: int = 1, wait: float | None = None) -> bool:
        return True

    def on_connected(self, hook: Any) -> None:
        self.hooks.append(hook)

    def publish_absolute(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        self.sent.append((topic, payload))

    def reconnect(self, flushed: frozenset[str] = frozenset()) -> list[tuple[str, bytes]]:
        self.flushed_on_connect, before = flushed, len(self.sent)
        for hook in self.hooks:
            hook()
        return self.sent[before:]


def answer(rid: str) -> Message:
    return Message(
        "printmesh/p/printer/res/move", CommandResponse(id=rid, ok=True).model_dump_json().encode(), 1, False
    )


def test_only_unanswered_recent_requests_not_just_flushed_go_out_again_with_their_id():
    runtime, clock, answers = Runtime(), Clock(), []
    matcher: Correlator[str] = Correlator(runtime, lambda owner, r: answers.append((owner, r.id)), clock=clock)  # type: ignore[arg-type]
    matcher.attach()
    target = Topics("printmesh", "p").component("printer")
    old = matcher.send(target, "move", {"id": "old", "x": 1}, "p")
    clock.t += 50
    answered = matcher.send(target, "move", {"id": "answered", "x": 2}, "p")
    lost = matcher.send(target, "move", {"id": "lost", "x": 3}, "p")
    matcher.on_response(answer(answered))
    assert answers == [("p", "answered")]
    clock.t += 20  # "old" is now 70 s old: past RESEND_WITHIN (60 s)
    again = runtime.reconnect()
    assert again == [("printmesh/p/printer/cmd/move", b'{"id": "lost", "x": 3}')], again
    assert old == "old"
    assert runtime.reconnect(flushed=frozenset({"printmesh/p/printer/cmd/move"})) == [], "the queue just sent it"
    matcher.on_response(answer(lost))
    assert runtime.reconnect() == [], "answered at last: not sent again"
    forgotten = matcher.send(target, "move", {"id": "forgotten"}, "p")
    matcher.forget(forgotten)
    assert runtime.reconnect() == [], "a request its caller gave up on is not sent again"
