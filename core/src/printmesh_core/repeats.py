"""Repeated requests: run once, answered every time.

QoS 1 delivers "at least once", and a requester that lost its broker (a failover, a restart)
cannot tell whether its request ran: it may have run and only the answer was lost. If the
repeat were dropped, the requester would wait for nothing; if it ran again, a ``move`` or a
``pause`` would happen twice. So a component remembers each ``(command, id)`` it accepted for
a window, with its answer once given: a repeat runs nothing and gets the first answer again,
on its own response topic with its own correlation data. A repeat that arrives while the
first is still running is answered when the first is. Stripe's idempotency keys and AWS's
client tokens work the same way.

A request that was not run (answered ``busy``) is forgotten, so a retry with the same id
runs. An answer too large to keep (``KEPT_BYTES``) is replaced, for repeats, by an error
saying so: memory stays bounded whatever the commands return.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from printmesh_core.models.envelope import CommandResponse, ErrorInfo

KEPT_BYTES = 16_384  # the largest answer kept for repeats (its JSON)
WAITING = 8  # repeats of one running request that are answered when it ends (more are dropped)

Key = tuple[str, str]  # (command, request id)
M = TypeVar("M")  # whatever identifies where a repeat is answered (a message)


@dataclass
class _Entry(Generic[M]):
    at: float
    answer: CommandResponse | None = None
    waiting: list[M] = field(default_factory=list)


@dataclass(frozen=True)
class Running:
    """The request is still running: the repeat is answered when it ends (``queued``) or not at all."""

    queued: bool


def kept(response: CommandResponse, size: int | None = None) -> CommandResponse:
    """``response`` as kept for repeats: itself, or an error that says the answer was too large.
    ``size``: its JSON's length, when the caller has written it already."""
    size = len(response.to_json()) if size is None else size
    if size <= KEPT_BYTES:
        return response
    text = f"request {response.id!r} already ran; its answer ({size} bytes) is too large to be kept for repeats"
    return CommandResponse(id=response.id, ok=False, error=ErrorInfo(code="repeat_not_kept", message=text))


class Dedupe(Generic[M]):
    """Request keys for ``window`` seconds (at most ``max_entries``), with their answers once given."""

    def __init__(self, window: float, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        self._seen: OrderedDict[Key, _Entry[M]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: Key, repeat: M | None = None) -> CommandResponse | Running | None:
        """None: the first time (remembered; run it). Otherwise what the repeat gets: the first
        answer to send again, or ``Running`` (and ``repeat`` is answered when the first is)."""
        if self.window <= 0:
            return None
        now = self._clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())).at <= now - self.window:
                self._seen.popitem(last=False)
            entry = self._seen.get(key)
            if entry is None:
                self._seen[key] = _Entry(now)
                if len(self._seen) > self.max_entries:
                    self._seen.popitem(last=False)
                return None
            if entry.answer is not None:
                return entry.answer
            queued = repeat is not None and len(entry.waiting) < WAITING
            if queued and repeat is not None:
                entry.waiting.append(repeat)
            return Running(queued)

    def first_time(self, key: Key) -> bool:
        """True, and remember ``key``, unless it was seen within the window."""
        return self.claim(key) is None

    def answered(self, key: Key, response: CommandResponse, size: int | None = None) -> list[M]:
        """Keep ``response`` (its JSON ``size`` bytes long, if known) for repeats of ``key``; the
        repeats waiting for it, to be answered now."""
        with self._lock:
            entry = self._seen.get(key)
            if entry is None:  # forgotten meanwhile (window or bound): nothing to keep
                return []
            entry.answer = kept(response, size)
            waiting, entry.waiting = entry.waiting, []
            return waiting

    def forget(self, key: Key) -> list[M]:
        """Forget ``key`` (it did not run: a retry with its id should); the repeats that waited for it."""
        with self._lock:
            entry = self._seen.pop(key, None)
            return [] if entry is None else entry.waiting
