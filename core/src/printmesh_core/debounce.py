"""One action per burst of triggers: wait until the triggers stop, but never longer than a bound.

Home Assistant publishes its birth (``homeassistant/status: online``) when it starts; anybody
who can publish can send it 1,000 times a second. Re-announcing discovery and republishing
the retained state for each one made 45,000 publishes out of 1,000 births, and the queued
publishes held on to memory. A ``Debouncer`` runs its action once ``quiet`` seconds after
the last trigger, or ``longest`` seconds after the first one of the burst if the triggers
never stop, on its own thread, so the caller (paho's network thread, or OctoPrint's) only
records a time and never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("printmesh.debounce")


class Debouncer:
    def __init__(
        self,
        action: Callable[[], None],
        quiet: float,
        longest: float,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.action = action
        self.quiet = quiet
        self.longest = max(quiet, longest)
        self.name = name
        self.triggers = 0  # since start
        self.runs = 0  # actions carried out since start
        self._clock = clock
        self._cond = threading.Condition()
        self._first: float | None = None  # first trigger of the burst pending
        self._last = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None

    def trigger(self) -> None:
        """Any thread, O(1): note one more trigger; the action follows once the burst ends."""
        now = self._clock()
        with self._cond:
            self.triggers += 1
            self._last = now
            if self._first is None:
                self._first = now
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(target=self._run, name=f"debounce-{self.name}", daemon=True)
                    self._thread.start()
                self._cond.notify()

    def _due(self) -> float | None:
        if self._first is None:
            return None
        return min(self._last + self.quiet, self._first + self.longest)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    due = self._due()
                    if due is not None and self._clock() >= due:
                        break
                    self._cond.wait(None if due is None else max(0.001, due - self._clock()))
                if self._closed:
                    return
                self._first = None
                self.runs += 1
            try:
                self.action()
            except Exception:
                log.exception("%s: debounced action failed", self.name)

    def close(self) -> None:
        """Stop the thread; a pending action is dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify()
