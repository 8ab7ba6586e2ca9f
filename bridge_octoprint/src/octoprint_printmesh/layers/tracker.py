"""Following a print through its layer table, one sent line at a time.

OctoPrint's comm thread calls the plugin's ``gcode.queuing``/``gcode.sending`` hook for every
line it takes from the file, before sending it, with the tags ``source:file`` and
``filepos:<n>``. The hook passes ``(n, line)`` to :meth:`LayerTracker.feed`, which compares
``n`` with the next layer's ``file_pos`` (the filepos tag of that layer's first line, see
:mod:`~octoprint_printmesh.layers.scanner`): one comparison per line, no parsing, no I/O, no
lock, so it is safe and cheap on the comm thread.

Only lines tagged ``source:file`` are fed: commands sent by the API or by plugins (a pause
script, a capture move) have no file position and are not part of the file's layers.
Resends never pass through the hooks, so positions only go backwards when a print restarts;
the tracker then starts over and reports the layer that line is in.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Protocol

from printmesh_core.models.layers import LayerEvent, LayerTable

_NEVER = 1 << 62


class Restarted(Exception):
    """The file position went back: the print restarted, or a new print began (``raise_on_restart``)."""


class Tracker(Protocol):
    """What the plugin's hook talks to: a table-driven tracker or the live fallback."""

    def feed(self, file_pos: int, line: str) -> LayerEvent | None: ...

    def reset(self) -> None: ...


class LayerTracker:
    """Fires layer N's event on the first line whose filepos tag reaches layer N's ``file_pos``.

    If a print starts part-way (OctoPrint can start at a file position) or one line jumps past
    several layers, the event is for the highest layer reached: a consumer wants "where are we
    now", not a burst of stale layers.
    """

    __slots__ = ("_index", "_last", "_next", "_positions", "_raise", "_table")

    def __init__(self, table: LayerTable, raise_on_restart: bool = False) -> None:
        self._table = table
        self._raise = raise_on_restart  # raise Restarted instead of starting over (the follower re-chooses)
        self._positions = [layer.file_pos for layer in table.layers]
        self.reset()

    @property
    def table(self) -> LayerTable:
        return self._table

    @property
    def layer(self) -> int:
        """The current layer number (0 before the first layer)."""
        return self._index

    def follow_on(self, file_pos: int) -> None:
        """Take over a print already at ``file_pos``: a position below it is a restart.

        The layer this print is in is still reported on the next line (a handoff decides
        whether it is news)."""
        self._last = file_pos

    def reset(self) -> None:
        """Back to the start of the file (call on PrintStarted)."""
        self._index = 0  # layers reached so far
        self._last = -1
        self._next = self._positions[0] if self._positions else _NEVER

    def feed(self, file_pos: int, line: str) -> LayerEvent | None:
        """``file_pos``: the line's ``filepos:`` tag; ``line``: the line as the hook got it (unused)."""
        if file_pos < self._next:
            if file_pos < self._last:  # the print restarted earlier in the file
                if self._raise:
                    raise Restarted
                self.reset()
                return self.feed(file_pos, line)
            self._last = file_pos
            return None
        self._last = file_pos
        positions = self._positions
        index = self._index + 1
        if index < len(positions) and positions[index] <= file_pos:  # jumped past more than one layer
            index = bisect_right(positions, file_pos)
        self._index = index
        self._next = positions[index] if index < len(positions) else _NEVER
        return self._event(index, file_pos)

    def _event(self, number: int, file_pos: int) -> LayerEvent:
        table = self._table
        info = table.layers[number - 1]
        return LayerEvent(
            layer=info.layer,
            z=info.z,
            height=info.height,
            file_pos=file_pos,
            total_layers=table.total_layers,
            total_height=table.total_height,
            source=table.source,
            slicer_layer=info.slicer_layer,
            path=table.path,
        )
