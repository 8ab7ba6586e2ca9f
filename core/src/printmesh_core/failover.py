"""Which broker to try next, and after how long: the runtime's reconnect decisions, kept pure.

A client of a broker cluster (``mqtt.hosts``) that loses its broker goes to the next one in
the list at once: the others are other machines, so the loss says nothing about them. It
does not come back to the first one when that one returns; it stays where it is until that
broker goes too (going back would drop a working connection for nothing). Within one round
of the list, a broker that cannot be reached is followed by the next one at once; only when
every broker of the list failed in a row does the client wait, with the backoff of
``mqtt.reconnect``: ``min_delay`` after the first failed round, doubling up to ``max_delay``.

With one broker (``mqtt.host``, the single-broker form) that is today's behaviour: after a
lost connection wait ``min_delay`` (the broker that just dropped us is the only one), then
back off after every failed attempt.

An attempt that failed only after ``STALL`` seconds or more (a NATS node holds a CONNECT
for ``js_api_timeout`` while JetStream elects the leader of the session stream, then closes
it) is ``stalled``: the broker is up but busy, and the attempt paced itself. The next broker
is tried at once and the failures in a row start again from zero, so no backoff is added
on top of an election: the first attempt after it connects (on NATS, at most
``js_api_timeout`` after the new leader, instead of up to ``max_delay`` more).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from printmesh_core.mqtt_settings import Broker, ReconnectConfig

Outcome = Literal["lost", "failed", "stalled"]  # a connection ended / an attempt failed / failed after STALL s
STALL = 0.5  # seconds: an attempt that took this long before failing was not refused at once


@dataclass(frozen=True)
class Attempt:
    index: int  # into the broker list
    delay: int  # seconds to wait before it


@dataclass(frozen=True)
class Move:
    broker: Broker  # the next attempt's
    delay: int  # seconds before it
    warning: str | None  # what to say in the log, if anything


@dataclass(frozen=True)
class FailoverState:
    index: int = 0  # the broker in use, or being tried
    failed: int = 0  # attempts failed in a row since the last connection


def backoff(rounds: int, reconnect: ReconnectConfig) -> int:
    """Seconds to wait after ``rounds`` whole rounds of the list failed in a row (0 before the first)."""
    if rounds <= 0:
        return 0
    return min(reconnect.min_delay << min(rounds - 1, 16), reconnect.max_delay)


def next_attempt(
    state: FailoverState, outcome: Outcome, brokers: int, reconnect: ReconnectConfig
) -> tuple[FailoverState, Attempt]:
    """After ``outcome`` on ``state.index``: the next broker to try, and the wait before it."""
    following = (state.index + 1) % brokers
    if outcome == "stalled":
        return FailoverState(following, 0), Attempt(following, 0)
    if outcome == "lost":
        delay = reconnect.min_delay if brokers == 1 else 0
        return FailoverState(following, 0), Attempt(following, delay)
    failed = state.failed + 1
    delay = backoff(failed // brokers, reconnect) if failed % brokers == 0 else 0
    return FailoverState(following, failed), Attempt(following, delay)


def connected(state: FailoverState) -> FailoverState:
    return FailoverState(state.index, 0)


class Failover:
    """The decisions above over one client's broker list, with what to say about them in the log."""

    def __init__(
        self, brokers: tuple[Broker, ...], reconnect: ReconnectConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not brokers:
            raise ValueError("no broker to connect to")
        self.brokers = brokers
        self.reconnect = reconnect
        self.state = FailoverState()
        self.switches = 0  # how often an attempt went to another broker than the one before
        self.stalls = 0  # attempts that failed after STALL s or more
        self._clock = clock
        self._began = clock()  # when the attempt under way started (after its delay)

    @property
    def current(self) -> Broker:
        return self.brokers[self.state.index]

    def connected(self) -> None:
        self.state = connected(self.state)
        self.stalls = 0

    def after(self, outcome: Outcome) -> Move:
        """The broker to try next, the seconds to wait before it, and what to log."""
        gone, now = self.current, self._clock()
        if outcome == "failed" and now - self._began >= STALL:
            outcome = "stalled"
            self.stalls += 1
        self.state, attempt = next_attempt(self.state, outcome, len(self.brokers), self.reconnect)
        broker = self.brokers[attempt.index]
        self.switches += broker != gone
        self._began = now + attempt.delay
        failed = self.stalls if outcome == "stalled" else self.state.failed
        return Move(broker, attempt.delay, warning(outcome, gone, broker, attempt.delay, failed))

    def describe(self) -> str:
        return ", ".join(str(b) for b in self.brokers)


def warning(outcome: Outcome, gone: Broker, broker: Broker, delay: int, failed: int) -> str | None:
    """A failover, always; a broker that cannot be reached, the first time and every 20th, so it never looks
    like a hang nor floods the log."""
    if outcome == "lost":
        return f"lost broker {gone}: failing over to {broker}" if broker != gone else None
    if outcome == "stalled":
        stalled = f"broker {gone} held the connection without accepting it ({failed} so far); next: {broker} at once"
        return stalled if failed == 1 or failed % 20 == 0 else None
    if failed == 1 or failed % 20 == 0:
        return f"cannot reach broker {gone} (attempt {failed}); next: {broker} in {delay}s"
    return None
