"""The bounded offline queue: what is published while the broker is unreachable.

Retained messages are state, so only the newest per topic is kept (never counted as a
drop). Other messages keep their order up to the bound; beyond it the oldest are dropped
and counted per topic, so the loss is reported rather than silent.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    correlation_data: bytes | None = None
    response_topic: str | None = None


class Outbox:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._retained: OrderedDict[str, Outgoing] = OrderedDict()
        self._queue: deque[Outgoing] = deque()
        self._dropped: Counter[str] = Counter()
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._queue) + len(self._retained)

    def put(self, out: Outgoing) -> None:
        if out.retain:
            self._retained.pop(out.topic, None)
            self._retained[out.topic] = out
            return
        if self.limit == 0:
            self._drop(out)
            return
        if len(self._queue) >= self.limit:
            self._drop(self._queue.popleft())
        self._queue.append(out)

    def put_earlier(self, earlier: list[Outgoing]) -> None:
        """Messages older than all queued ones (a lost connection's unacknowledged sends): queued state wins."""
        retained = OrderedDict((out.topic, out) for out in earlier if out.retain and out.topic not in self._retained)
        self._retained = OrderedDict([*retained.items(), *self._retained.items()])
        self._queue.extendleft(reversed([out for out in earlier if not out.retain]))
        while len(self._queue) > self.limit:
            self._drop(self._queue.popleft())

    def _drop(self, out: Outgoing) -> None:
        self._dropped[out.topic] += 1
        self.dropped_total += 1

    def drain(self) -> tuple[list[Outgoing], str | None]:
        """Everything queued, oldest state first, and a report of the drops since the last drain."""
        report = None
        if self._dropped:
            total = sum(self._dropped.values())
            worst = ", ".join(f"{t} x{n}" for t, n in self._dropped.most_common(5))
            report = f"offline queue dropped {total} message(s) while disconnected: {worst}"
            self._dropped.clear()
        pending = [*self._retained.values(), *self._queue]
        self._retained.clear()
        self._queue.clear()
        return pending, report


def take_unacked(client: Any) -> list[Outgoing]:
    """Take a paho client's unacknowledged sends of the lost connection out of its session queue.

    Paho resends them *after* the connect callback, so a retained state sent as the broker went away would
    overwrite the newer one the callback sends from our queue; put back in front of that queue, the newer wins.
    Duck-typed on paho 2.x's internals (``mqtt`` is the one module that imports paho); without them, paho resends.
    """
    pending, mutex = getattr(client, "_out_messages", None), getattr(client, "_out_message_mutex", None)
    if not pending or mutex is None:
        return []
    with mutex:
        taken = [
            Outgoing(m.topic, bytes(m.payload), m.qos, bool(m.retain), *_reply_of(getattr(m, "properties", None)))
            for m in pending.values()
        ]
        pending.clear()
    return taken


def _reply_of(props: Any) -> tuple[bytes | None, str | None]:
    return getattr(props, "CorrelationData", None), getattr(props, "ResponseTopic", None)
