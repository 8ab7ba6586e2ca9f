"""A printer's live state at most every ``SPACING`` s while a hold runs; every other state at once.

A hold changes the published ``CoordinatorState`` about three times per grid point (moving,
capturing, storing): some 30 retained messages per hold, each built, serialised and sent by
the loop, and delivered to every dashboard and Home Assistant. Within one hold only the latest
progress matters to a reader, so such a state waits until ``SPACING`` s after the printer's
previous one, and a newer one replaces it meanwhile. A state that is not mere progress (a hold
starting or ending, arming, a refusal) goes out at once and drops the waiting one, so the
retained state is always the newest and never more than ``SPACING`` s behind.
"""

from __future__ import annotations

from collections.abc import Callable

from printmesh_core.models.coordinator import CoordinatorState

SPACING = 0.25  # s between two progress states of one printer


class StatePacer:
    def __init__(self, send: Callable[[str, CoordinatorState], None], spacing: float = SPACING) -> None:
        self._send = send
        self._spacing = spacing
        self._sent: dict[str, float] = {}  # printer -> when its last state went out
        self._waiting: dict[str, CoordinatorState] = {}

    def offer(self, printer: str, state: CoordinatorState, progress: bool, now: float) -> None:
        if progress and now < self._sent.get(printer, float("-inf")) + self._spacing:
            self._waiting[printer] = state
            return
        self._waiting.pop(printer, None)
        self._out(printer, state, now)

    def due(self) -> float | None:
        """When the earliest waiting state is to go out (the loop wakes up for it)."""
        return min((self._sent[p] + self._spacing for p in self._waiting), default=None)

    def flush(self, now: float, everything: bool = False) -> None:
        for printer in [p for p in self._waiting if everything or self._sent[p] + self._spacing <= now]:
            self._out(printer, self._waiting.pop(printer), now)

    def _out(self, printer: str, state: CoordinatorState, now: float) -> None:
        self._sent[printer] = now
        self._send(printer, state)
