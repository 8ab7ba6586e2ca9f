"""The modes a hold restores, tracked from the lines OctoPrint queues, at one string search per move.

OctoPrint's comm thread is the only writer (through the queuing hook, or a marked print's
marks, which also hand it the lines sent from outside the file); a hold reads
:attr:`TrackedModes.modes` from another thread when the origin is reported. A sliced file
may set F on every move, so a move's line is kept as it is and parsed only when read: the
comm thread's cost is one ``str.find`` and one store per move.
"""

from __future__ import annotations

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour, Modes, track

POSITIVE_LEADS = frozenset("123456789")  # after "F": a feed rate > 0 whatever digits follow


class TrackedModes:
    def __init__(self) -> None:
        self._modes = Modes()
        self._feed_line: str | None = None  # the last move that set a feed rate, not parsed yet

    def line(self, line: str, flavour: Flavour = DEFAULT_FLAVOUR) -> None:
        """A line that changes the modes (G90/M83/F/G28/M84) was queued: parsed now."""
        self._modes = track(self.read(flavour), line, flavour=flavour)
        self._feed_line = None  # folded into the modes above

    def feed_rate_line(self, line: str, flavour: Flavour = DEFAULT_FLAVOUR) -> None:
        """A G0/G1 with an ``F`` word was queued.

        Only a line whose F is plainly positive is kept unparsed; anything else (``F0``,
        ``F.5``, ``F 90``) is parsed at once, since a feed rate that is not > 0 leaves the
        modes as they were and must not hide the last one that was.
        """
        at = line.find("F")
        if line[at + 1 : at + 2] in POSITIVE_LEADS:
            self._feed_line = line
        else:
            self.line(line, flavour)

    def read(self, flavour: Flavour = DEFAULT_FLAVOUR) -> Modes:
        """The modes after the last line tracked (any thread)."""
        modes, line = self._modes, self._feed_line
        return modes if line is None else track(modes, line, flavour=flavour)

    def reset(self) -> None:
        self._modes, self._feed_line = Modes(), None
