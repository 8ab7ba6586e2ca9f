"""When to send what: at most one update per section per interval, and only what changed.

Pure. A section marked dirty is sent when its interval since the last send has passed;
marks in between collapse into one send of the latest state. What goes out is a patch:
the top-level fields that differ from what was last sent, with absolute values, so a
page that also fetched a full snapshot meanwhile ends up right whatever the order.

``Viewers`` tracks which pages have the tab open: each announces itself while the tab is
visible and expires if it stops; with none, nothing is built and nothing is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

INTERVAL = 0.5  # seconds: at most 2 updates per second per section
VIEWER_TTL = 30.0  # seconds a page's announcement lasts (it repeats every 10 s)
GONE = None  # the value of a field that disappeared


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``new`` that differ from ``old``, and the ones it lost (as None)."""
    if old is None:
        return dict(new)
    out = {k: v for k, v in new.items() if k not in old or old[k] != v}
    out.update({k: GONE for k in old if k not in new})
    return out


@dataclass
class Coalescer:
    interval: float = INTERVAL
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    flushed: float = -math.inf  # when due() last handed out sections

    def mark(self, keys: set[str]) -> None:
        self.dirty |= keys

    def due(self, now: float) -> list[str]:
        """Every dirty section, at most once per interval in all: the caller sends them in one message.

        Why one clock for all sections, not one per section: each plugin message costs OctoPrint
        a JSON encoding and a socket write per connected page, so ten sections on ten staggered
        timers cost ten times what one message every half second does (bench/dashboard.py).
        A change after a quiet interval still goes at once.
        """
        if not self.dirty or now - self.flushed < self.interval:
            return []
        self.flushed = now
        return sorted(self.dirty)

    def next_due(self, now: float) -> float | None:
        """Seconds until the dirty sections may go; None when nothing waits."""
        if not self.dirty:
            return None
        return max(0.0, self.flushed + self.interval - now)

    def take(self, key: str, section: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
        """The patch for ``key`` (None: nothing changed); ``section`` None: the section is gone."""
        self.dirty.discard(key)
        old = self.sent.get(key)
        if section is None:
            if old is None:
                return None
            del self.sent[key]
            self.last[key] = now
            return {}
        patch = diff(old, section)
        if not patch and old is not None:
            return None
        self.sent[key] = section
        self.last[key] = now
        return patch

    def reset(self) -> None:
        """No page is watching: forget what was sent, so the next page starts from a snapshot."""
        self.sent.clear()
        self.last.clear()
        self.dirty.clear()
        self.flushed = -math.inf


@dataclass
class Viewers:
    ttl: float = VIEWER_TTL
    seen: dict[str, float] = field(default_factory=dict)

    def touch(self, client: str, now: float) -> bool:
        """A page announced itself; True if it is new."""
        new = client not in self.seen
        self.seen[client] = now
        return new

    def leave(self, client: str) -> None:
        self.seen.pop(client, None)

    def active(self, now: float) -> bool:
        for client, at in list(self.seen.items()):
            if now - at > self.ttl:
                del self.seen[client]
        return bool(self.seen)
