"""Following a print's layers from OctoPrint's gcode hook, at a few microseconds per line.

The hook runs on OctoPrint's comm thread, so everything here is constant-time and does no
I/O: scanning a file for its layer table happens on the bridge's worker thread, when the
file is added or selected, and the table waits in a :class:`~.layers.TableCache`.

**The comm thread starts following a print itself**, on the print's first file line (or a
file position that went back: a new print), not when OctoPrint's event thread gets to
``PrintStarted``: OctoPrint starts streaming the file as it fires that event, and on a fast
start the first layer's lines are out before the event is handled. It looks the file being
printed up in the cache (``comm.getFilePosition()``, memory only): with its table, layer 1
is the part's first layer from the first line on (a purge line in the start G-code is not);
without it, the live fallback follows from the first line until the table arrives.

**Handoff.** When the table arrives mid-print (:meth:`LayerFollower.install`, worker
thread), the table's tracker takes over at the next line: it finds the layer that line is
in, and the follower announces it only if it is past the last layer announced. Layer
numbers announced in one print only go up, each once: the fallback announces a layer on its
first extruding line, so a layer it already announced is not repeated, and a layer the table
has reached but the fallback has not yet seen extrude is announced on this line, which is
still before that extrusion. Every layer after it is announced on its first line, as the
table says. (If the fallback counted a purge below the first layer as a layer of its own,
it is one ahead; the table's numbers then stay silent until they pass it, rather than
repeat a number.)

A new layer goes two ways: ``emit`` queues its publication, and ``at_layer`` hands it to
the hold (``hold.driver.HoldDriver.at_layer``), which may keep the layer's first line back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour
from octoprint_printmesh.layers import FallbackTracker, LayerTracker, Restarted, TableCache, Tracker
from printmesh_core.models.layers import LayerEvent, LayerTable


class _Idle:
    """The tracker between prints: any file line starts one."""

    def feed(self, file_pos: int, line: str) -> LayerEvent | None:
        raise Restarted

    def reset(self) -> None:
        pass


IDLE = _Idle()


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


def printing_file(comm: Any) -> str | None:
    """The path on disk of the file OctoPrint is printing (from the hook's comm object)."""
    try:
        where = comm.getFilePosition() if comm is not None else None
    except Exception:  # an older or newer comm layer: fall back to the selection
        return None
    if not isinstance(where, dict) or where.get("origin") != "local":
        return None
    name = where.get("filename")
    return name if isinstance(name, str) else None


class LayerFollower:
    def __init__(
        self,
        emit: Callable[[LayerEvent], None],
        at_layer: Callable[[LayerEvent, str], bool] = lambda e, line: False,
        tables: TableCache | None = None,
    ) -> None:
        self.emit = emit  # must only enqueue: it runs on the comm thread
        self.at_layer = at_layer  # True: the job was put on hold before this line
        self.tables = tables if tables is not None else TableCache()
        self.flavour: Flavour = DEFAULT_FLAVOUR  # the firmware's, set by the plugin
        self.path: str | None = None  # the print's path in storage
        self.selected: tuple[str, str] | None = None  # (path in storage, path on disk), from FileSelected
        self._tracker: Tracker = IDLE
        self.marked = False  # this print's table comes from the file's upload marks (comm_hooks.HookSwitch)
        self._announced = 0  # the last layer announced in this print
        self._lock = threading.Lock()  # start, handoff and end; never taken per line
        self._begun = 0  # prints begun (comm thread)
        self._started = 0  # PrintStarted events handled (event thread)

    @property
    def tracker(self) -> Tracker | None:
        return None if self._tracker is IDLE else self._tracker

    # ---------------------------------------------------------- event thread
    def select(self, path: str | None, disk_path: str | None) -> None:
        """FileSelected (or deselected): the file the next print will most likely be."""
        self.selected = (path, disk_path) if path is not None and disk_path is not None else None

    def started(self, path: str | None) -> None:
        """PrintStarted was handled: name the print (the comm thread may have begun it already)."""
        with self._lock:
            self._started = max(self._started + 1, self._begun)  # (a follower made mid-print catches up)
            self.path = path
            if isinstance(self._tracker, FallbackTracker):
                self._tracker.path = path

    def begin(self, path: str | None, table: LayerTable | None) -> None:
        """Follow a print from its next line with ``table``, or with the live fallback."""
        with self._lock:
            self._start(path, table)
            self._started = self._begun

    def install(self, path: str | None, table: LayerTable) -> None:
        """A table scanned for ``path`` arrived (worker thread): the running print takes it over."""
        with self._lock:
            live = self._tracker
            if path == self.path and isinstance(live, FallbackTracker):
                tracker = LayerTracker(table, raise_on_restart=True)
                tracker.follow_on(live.position)
                self._tracker = tracker  # the comm thread's next line hands off (see above)
                self.marked = table.marked

    def end(self) -> None:
        """The print ended (event thread); unless the comm thread already began the next one."""
        with self._lock:
            if self._begun <= self._started:
                self._tracker = IDLE
                self.marked = False
                self._begun = self._started  # a print that ended before its first file line

    # ----------------------------------------------------------- comm thread
    def _start(self, path: str | None, table: LayerTable | None) -> Tracker:
        self.path = path
        self._announced = 0
        self._begun += 1
        tracker: Tracker = self._live(path) if table is None else LayerTracker(table, raise_on_restart=True)
        self._tracker = tracker
        self.marked = table is not None and table.marked
        return tracker

    def _live(self, path: str | None) -> FallbackTracker:
        return FallbackTracker(path=path, flavour=self.flavour, raise_on_restart=True)

    def _begin_print(self, comm: Any) -> Tracker:
        """The first line of a print: its table if the cache has it, else the live fallback."""
        disk = printing_file(comm)
        selected = self.selected
        if selected is not None and (disk is None or selected[1] == disk):
            path, disk = selected
        else:
            path = None
        with self._lock:
            table = self.tables.get(disk, self.flavour)
            return self._start(path if table is None else table.path, table)

    def on_line(self, tags: Iterable[str] | None, line: str, comm: Any = None) -> bool:
        """Follow one line; True when it starts a layer the hold stopped before (suppress it)."""
        pos = file_position(tags)
        if pos is None:
            return False
        try:
            event = self._tracker.feed(pos, line)
        except Restarted:  # a print's first line (between prints, or a position that went back)
            event = self._begin_print(comm).feed(pos, line)
        if event is None or event.layer <= self._announced:
            return False
        self._announced = event.layer
        self.emit(event)
        return self.at_layer(event, line)
