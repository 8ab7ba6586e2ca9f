"""Layers without slicer markers: a new layer is extrusion at a new maximum Z.

Used for files whose markers were stripped (post-processors, some slicers' defaults, Slic3r)
and, live, for files the plugin could not scan. Why "extrusion" and not "Z changed": every
false positive users hit with other tools comes from Z moves that print nothing:

* z-hop: Z rises on a travel move and comes back down before the next extruding move, so no
  extrusion happens at the hopped Z (OctoPrint's own ZChange fires on both hop moves);
* start G-code lifts (``G1 Z5``) and homing are travel;
* a layer change raises Z and then extrudes there, so the *first extruding line at the new
  Z* is where the layer starts. The hook sees a line before OctoPrint sends it, so firing on
  that line is still before the first extrusion of the layer reaches the printer.

**The first layer** is the part's first layer, not the start G-code's purge line. A purge is
extrusion that opens the print and is at most ``PRIME_MOVES`` extruding moves long, and
either (a) is followed by an extruder reset (``G92 E``) and then extrusion at its Z or below
(Prusa's and Cura's stock start G-code: purge, ``G92 E0``, travel, the part at the same Z or,
for Cura's Z0.3 purge, lower), or (b) is followed by extrusion at a higher Z (a purge *below*
the first layer). The part's first layer is never that short and never reset in between:
one perimeter is already four moves, and slicers reset E at layer changes, not inside one.
The table builder, which sees the whole file, applies this exactly: layer 1 starts at the
part's first extrusion. The live detector cannot look ahead (the purge and a part's first
layer begin with the same lines), so it fires layer 1 on the purge's first extrusion, early
but never late, and agrees with the table from layer 2 on; when extrusion later happens
*below* layer 1's Z it re-bases instead of counting. The bridge scans a file when it is
added or selected, so a print normally starts with its table; the live detector follows
only a print that outran the scan, until the table takes over (``layer_follower``).

**Objects printed one at a time** ("complete objects"/sequential printing): from layer 2 on,
extrusion more than one layer height *below* the current layer is the next object's first
layer. It is a new layer, numbered on (as the markers' tables do), with its height measured
from the bed. Smaller drops re-base the current layer instead (Cura prints the first layer
above a raft 0.02 mm higher than the next).

Spiral vase: every extruding move raises Z a little. When extruding moves themselves change
Z, a new layer starts each time Z has risen by one step (the height of the last flat layer)
since the start of the current one. Counts and heights then match the slicer's markers, but
``z`` is where each revolution *starts* (the slicer labels a revolution with the Z it ends at).
"""

from __future__ import annotations

from dataclasses import dataclass

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, EXTRUDES, Z_MOVED, Flavour, Motion
from octoprint_printmesh.layers.tracker import Restarted
from printmesh_core.models.layers import LayerEvent

TOLERANCE = 0.002  # mm: slicers print Z with 3 decimals; spiral rounding stays well inside this
PRIME_MOVES = 4  # extruding moves a purge line takes at most (Prusa's purge: 2, Cura's: 2)
NEW = 1
REBASED = 2


class FallbackDetector:
    """The rule alone: given each line's motion flags and Z, does a layer start here?"""

    __slots__ = ("height", "layer", "layer_z", "min_layer_height", "spiral", "step")

    def __init__(self, min_layer_height: float = 0.0) -> None:
        self.min_layer_height = min_layer_height
        self.layer = 0
        self.layer_z: float | None = None
        self.height: float | None = None
        self.step: float | None = None  # height of the last flat layer: the spiral's step
        self.spiral = False

    def observe(self, flags: int, z: float | None) -> int:
        """Return ``NEW`` when this line starts a layer, ``REBASED`` when it lowered the layer Z."""
        if not flags & EXTRUDES or z is None:
            return 0
        spiral_move = bool(flags & Z_MOVED)
        lz = self.layer_z
        result = 0
        if lz is None:
            self._start(z, z)
            result = NEW
        elif spiral_move and self.spiral:
            step = self.step if self.step is not None else max(self.min_layer_height, 0.1)
            if z >= lz + step - TOLERANCE:
                self._start(z, step)
                result = NEW
            elif z < lz - TOLERANCE:
                result = self._below(z)
        elif z > lz + (TOLERANCE if spiral_move else max(TOLERANCE, self.min_layer_height)):
            if spiral_move:  # the first revolution of a vase: it starts right above the flat layers
                self._start(z, self.step if self.step is not None else z - lz)
            else:
                self.step = z - lz
                self._start(z, z - lz)
            result = NEW
        elif z < lz - TOLERANCE:
            result = self._below(z)
        self.spiral = spiral_move
        return result

    def _start(self, z: float, height: float) -> None:
        self.layer += 1
        self.layer_z = z
        self.height = round(height, 6)

    def restart(self) -> None:
        """Forget every layer: the extrusion so far was a purge, not the part."""
        self.layer, self.layer_z, self.height, self.step, self.spiral = 0, None, None, None, False

    def _below(self, z: float) -> int:
        """Extrusion below the current layer: the next object, or a correction of this layer's Z.

        From layer 2 on, a drop of more than the current layer's height means the print went
        back down to start another object (sequential printing): a new layer, numbered on,
        measured from the bed like a first layer. A smaller drop (Cura prints the first layer
        over a raft 0.02 mm higher than the next) and any drop in layer 1 (a purge above the
        first layer) re-base the current layer instead.
        """
        lz = self.layer_z
        if self.layer >= 2 and lz is not None and lz - z > (self.height or 0.0) + TOLERANCE:
            self.step = None
            self._start(z, z)
            return NEW
        return self._rebase(z)

    def _rebase(self, z: float) -> int:
        self.layer_z = z
        if self.layer == 1:
            self.height = z
        return REBASED


class FallbackTracker:
    """Live fallback with the tracker interface: ``feed(file_pos, line)`` per comment-free line.

    Costs one G-code parse per line (a few microseconds); it has no total, and no lookahead,
    so a purge line fires layer 1 early (see the module docstring). Prefer a table from
    :func:`~octoprint_printmesh.layers.scanner.scan_file` whenever the file can be read.
    """

    def __init__(
        self,
        min_layer_height: float = 0.0,
        path: str | None = None,
        flavour: Flavour = DEFAULT_FLAVOUR,
        raise_on_restart: bool = False,
    ) -> None:
        self._min = min_layer_height
        self._raise = raise_on_restart  # a file position that went back raises Restarted
        self.path = path  # named by the plugin at PrintStarted when the print began first
        self._flavour = flavour
        self.reset()

    def reset(self) -> None:
        self._motion = Motion(self._flavour)
        self._detector = FallbackDetector(self._min)
        self._last = -1

    @property
    def position(self) -> int:
        """The file position of the last line fed (-1 before the first)."""
        return self._last

    def feed(self, file_pos: int, line: str) -> LayerEvent | None:
        if file_pos < self._last and self._raise:
            raise Restarted
        self._last = file_pos
        motion = self._motion
        flags = motion.feed(line)
        if not flags & EXTRUDES or self._detector.observe(flags, motion.z) != NEW:
            return None
        d = self._detector
        assert d.layer_z is not None
        return LayerEvent(
            layer=d.layer, z=d.layer_z, height=d.height, file_pos=file_pos, source="fallback", path=self.path
        )


@dataclass(slots=True)
class FallbackRow:
    z: float
    height: float
    offset: int
    file_pos: int
    moves: int = 1  # extruding moves seen in this layer so far


class FallbackRows:
    """Builds the fallback layer table while a scanner walks the file (with lookahead fixes)."""

    def __init__(self, min_layer_height: float = 0.0) -> None:
        self.detector = FallbackDetector(min_layer_height)
        self.rows: list[FallbackRow] = []
        self._purged = False  # layer 1 so far is a purge that ended with an E reset

    def e_reset(self) -> None:
        """A ``G92 E``: if layer 1 so far is at most ``PRIME_MOVES`` moves, it may have been a purge."""
        rows = self.rows
        self._purged = len(rows) == 1 and rows[0].moves <= PRIME_MOVES

    def observe(self, flags: int, z: float | None, offset: int, file_pos: int) -> None:
        """Feed one line's motion flags; ``offset``/``file_pos`` locate that line."""
        if not flags & EXTRUDES:
            return
        d = self.detector
        if self._purged:
            self._purged = False
            if z is not None and d.layer_z is not None and z <= d.layer_z + TOLERANCE:
                self.rows.clear()  # a purge, then the part at its Z or below: the part is layer 1
                d.restart()
        result = d.observe(flags, z)
        rows = self.rows
        if result == NEW:
            assert d.layer_z is not None and d.height is not None
            if len(rows) == 1 and rows[0].moves <= PRIME_MOVES:  # layer 1 was only a purge line
                rows.pop()
                d.layer -= 1
                d.height = d.layer_z  # measured from the bed again
                d.step = None
            rows.append(FallbackRow(d.layer_z, d.height, offset, file_pos))
        elif result == REBASED and d.layer == 1 and rows:
            assert d.layer_z is not None
            rows[0] = FallbackRow(d.layer_z, d.layer_z, offset, file_pos)
        elif rows:
            rows[-1].moves += 1
