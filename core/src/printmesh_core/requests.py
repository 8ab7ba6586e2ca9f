"""Calling commands: publish a request, and match each answer to its request by ``id``.

One matcher for every requester. The coordinator keeps many printers' requests in flight
and must never block: ``Correlator`` hands each answer to a callback with whoever sent
the request (its *owner*), and remembers owners after the answer, because a camera's image
(``<cam>/capture/<capture_id>``, the capture id being the request id) may come later.
Tools, tests and benchmarks just wait: ``Requester.call``.

A request not yet answered when the connection drops is sent again, with the same id, once we
are connected again (if younger than ``RESEND_WITHIN``): its answer may have been published
while we were away (a broker restart, a failover to another node of a cluster), and with a
clean session the broker keeps nothing for us. The component runs a repeated id at most once
and answers it with its first answer (``repeats.py``), so this never runs a command twice.

Answers arrive on the plain ``res/<name>`` topics, which works with any broker and MQTT
3.1.1, or, given a ``requester`` (MQTT 5), in that requester's own reply subtree,
``<root>/reply/<requester>/<node>/<component>``: the only response topics a command server
honours (so a response topic cannot be used to make one component press another's button),
and, under the generated ACL, the only ones nobody else can read.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from printmesh_core.contract import read
from printmesh_core.models.envelope import CommandRequest, CommandResponse
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import ComponentTopics, join, reply_filter, reply_topic, requester_id

log = logging.getLogger("printmesh.requests")

T = TypeVar("T")
KEPT = 4096  # owners remembered (oldest forgotten first)
RESEND_WITHIN = 60.0  # s: an unanswered request this young is sent again after a reconnect
Body = CommandRequest | Mapping[str, Any] | None


class RequestTimeout(TimeoutError):
    pass


def encode(body: Body) -> tuple[str, bytes]:
    """(id, payload); a model leaves its defaults out, a mapping gets a fresh id if it has none."""
    if isinstance(body, CommandRequest):
        return body.id, body.model_dump_json(exclude_none=True, exclude_defaults=True).encode()
    request = dict(body or {})
    rid = str(request.setdefault("id", uuid.uuid4().hex))
    return rid, json.dumps(request).encode()


@dataclass(frozen=True)
class _Sent:
    topic: str
    payload: bytes
    reply: str | None
    at: float


class Correlator(Generic[T]):
    """Requests in flight, by id, each with its owner; answers go to ``on_answer(owner, response)``."""

    def __init__(
        self,
        runtime: MqttRuntime,
        on_answer: Callable[[T, CommandResponse], None],
        *,
        requester: str | None = None,
        kept: int = KEPT,
        resend_within: float = RESEND_WITHIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.on_answer = on_answer
        self.requester = requester  # our reply subtree (MQTT 5); None: answers on res/<name>
        self.kept = kept
        self.resend_within = resend_within
        self._clock = clock
        self._owners: OrderedDict[str, T] = OrderedDict()
        self._unanswered: OrderedDict[str, _Sent] = OrderedDict()
        self._watched: set[str] = set()
        self._lock = threading.Lock()

    def attach(self) -> None:
        """Subscribe to our reply subtree (MQTT 5), and send unanswered requests again on every
        reconnect; call once, before connecting, or at any time."""
        if self.requester is not None:
            self.runtime.subscribe_relative(reply_filter(self.requester), self.on_response, qos=1)
        self.runtime.on_connected(self.resend)

    def watch(self, target: ComponentTopics, command: str, wait: float | None = None) -> bool:
        """Subscribe to ``target``'s ``res/<command>`` once; with ``wait``, until the broker acknowledged."""
        topic = target.res(command)
        with self._lock:
            if topic in self._watched:  # the common case: one set lookup per call
                return True
            self._watched.add(topic)
        return self.runtime.subscribe_relative(topic, self.on_response, qos=1, wait=wait)

    def send(self, target: ComponentTopics, command: str, body: Body, owner: T) -> str:
        """Publish a request to ``target``'s ``cmd/<command>``; returns its id."""
        rid, payload = encode(body)
        root = self.runtime.root
        reply = join(root, reply_topic(self.requester, target)) if self.requester is not None else None
        topic = join(root, target.cmd(command))
        with self._lock:
            self._owners[rid] = owner
            while len(self._owners) > self.kept:
                self._owners.popitem(last=False)
            self._unanswered.pop(rid, None)
            self._unanswered[rid] = _Sent(topic, payload, reply, self._clock())
            while len(self._unanswered) > self.kept:
                self._unanswered.popitem(last=False)
        self.runtime.publish_absolute(topic, payload, qos=1, response_topic=reply)
        return rid

    def resend(self) -> None:
        """After a (re)connect: each unanswered request younger than ``resend_within`` again, same id
        (not one the runtime's queue has just sent: it never left)."""
        now, flushed = self._clock(), self.runtime.flushed_on_connect
        with self._lock:
            for rid in [r for r, s in self._unanswered.items() if now - s.at > self.resend_within]:
                del self._unanswered[rid]
            due = [(rid, s) for rid, s in self._unanswered.items() if s.topic not in flushed]
        for rid, sent in due:
            log.info("request %s on %s had no answer when the connection dropped: sent again (the same id never "
                     "runs twice)", rid, sent.topic)  # fmt: skip
            self.runtime.publish_absolute(sent.topic, sent.payload, qos=1, response_topic=sent.reply)

    def owner(self, request_id: str) -> T | None:
        with self._lock:
            return self._owners.get(request_id)

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._owners.pop(request_id, None)
            self._unanswered.pop(request_id, None)

    def on_response(self, message: Message) -> None:
        if not message.payload:
            return
        response = read(CommandResponse, message.payload)  # Unreadable: counted by the runtime
        owner = None
        if response.id is not None:
            with self._lock:
                self._unanswered.pop(response.id, None)
                owner = self._owners.get(response.id)
        if owner is not None:  # else another requester's (res/ topics are shared), or long forgotten
            self.on_answer(owner, response)


def _resolve(future: Future[CommandResponse], response: CommandResponse) -> None:
    if not future.done():
        future.set_result(response)


class Requester:
    """Waits for each answer: ``call`` returns the response or raises ``RequestTimeout``."""

    def __init__(self, runtime: MqttRuntime, requester: str | None = None) -> None:
        """Under MQTT 5 answers come to ``requester``'s reply subtree (by default the broker
        account, whose subtree the ACL lets it read, else a random id); under 3.1.1 on ``res/``."""
        self.runtime = runtime
        if runtime.config.protocol == "5":
            requester = requester or requester_id(runtime.config.username, "rpc", uuid.uuid4().hex[:12])
        else:
            requester = None
        self.matcher: Correlator[Future[CommandResponse]] = Correlator(runtime, _resolve, requester=requester)
        self.matcher.attach()

    def watch(self, target: ComponentTopics, command: str, timeout: float = 5.0) -> bool:
        """Subscribe to a response topic ahead of the first call (waits for the broker's ack)."""
        return self.matcher.watch(target, command, wait=timeout)

    def call(self, target: ComponentTopics, command: str, body: Body = None, timeout: float = 10.0) -> CommandResponse:
        if self.matcher.requester is None:
            self.watch(target, command, timeout)
        if not isinstance(body, CommandRequest):
            body = {"id": uuid.uuid4().hex, **(body or {})}
        future: Future[CommandResponse] = Future()
        rid = self.matcher.send(target, command, body, future)
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise RequestTimeout(f"no response to {command} (id {rid}) within {timeout}s") from None
        finally:
            self.matcher.forget(rid)
