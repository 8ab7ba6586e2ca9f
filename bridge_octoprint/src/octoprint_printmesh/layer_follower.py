"""Following a print's layers from OctoPrint's gcode hook, at a few microseconds per line.

The hook runs on OctoPrint's comm thread, so everything here is constant-time and does no
I/O: scanning a file for its layer table happens on the bridge's worker thread. Until the
table is ready (a print started before its file was scanned), the live fallback detector
follows the print; when the table arrives it takes over without repeating a layer.

A new layer goes two ways: ``emit`` queues its publication, and ``at_layer`` hands it to
the hold (``hold.driver.HoldDriver.at_layer``), which may keep the layer's first line back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour
from octoprint_printmesh.layers import FallbackTracker, LayerTracker, Tracker
from printmesh_core.models.layers import LayerEvent, LayerTable


def file_position(tags: Iterable[str] | None) -> int | None:
    """The ``filepos:N`` tag of a line that comes from the printed file, else None."""
    if not tags or "source:file" not in tags:
        return None
    for tag in tags:
        if tag.startswith("filepos:"):
            try:
                return int(tag[8:])
            except ValueError:
                return None
    return None


class LayerFollower:
    def __init__(
        self, emit: Callable[[LayerEvent], None], at_layer: Callable[[LayerEvent, str], bool] = lambda e, line: False
    ) -> None:
        self.emit = emit  # must only enqueue: it runs on the comm thread
        self.at_layer = at_layer  # True: the job was put on hold before this line
        self._tracker: Tracker | None = None
        self._last_layer = 0
        self.path: str | None = None
        self.flavour: Flavour = DEFAULT_FLAVOUR  # the firmware's, set by the plugin

    def begin(self, path: str | None, table: LayerTable | None) -> None:
        """A print started: follow it with the table if known, else with the live fallback."""
        self.path = path
        self._last_layer = 0
        self._tracker = LayerTracker(table) if table is not None else FallbackTracker(path=path, flavour=self.flavour)

    def install(self, path: str | None, table: LayerTable) -> None:
        """The scanned table for the running print arrived (from the worker thread)."""
        if path == self.path and self._tracker is not None and not isinstance(self._tracker, LayerTracker):
            self._tracker = LayerTracker(table)

    def end(self) -> None:
        self._tracker = None

    def on_line(self, tags: Iterable[str] | None, line: str) -> bool:
        """Follow one line; True when it starts a layer the hold stopped before (suppress it)."""
        tracker = self._tracker
        if tracker is None:
            return False
        pos = file_position(tags)
        if pos is None:
            return False
        event = tracker.feed(pos, line)
        if event is not None and event.layer != self._last_layer:
            self._last_layer = event.layer
            self.emit(event)
            return self.at_layer(event, line)
        return False
