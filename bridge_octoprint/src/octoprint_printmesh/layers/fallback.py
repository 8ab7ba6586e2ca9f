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

Purge lines do extrude. One above the first layer (Cura's Creality start G-code draws at
Z0.3, then the first layer is at 0.2) makes the first extrusion "layer 1" too early; when
extrusion later happens *below* the current layer Z, the detector re-bases the layer Z
instead of counting (live: layer 1 has already fired at the purge, its z is corrected for
the next layers' heights). The table builder, which sees the whole file, goes further: it
moves layer 1 to where extrusion at its final Z starts, and drops a first "layer" of at most
``PRIME_MOVES`` extruding moves (a purge *below* the first layer height) once a real layer
follows.

Spiral vase: every extruding move raises Z a little. When extruding moves themselves change
Z, a new layer starts each time Z has risen by one step (the height of the last flat layer)
since the start of the current one. Counts and heights then match the slicer's markers, but
``z`` is where each revolution *starts* (the slicer labels a revolution with the Z it ends at).
"""

from __future__ import annotations

from dataclasses import dataclass

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, EXTRUDES, Z_MOVED, Flavour, Motion
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
                result = self._rebase(z)
        elif z > lz + (TOLERANCE if spiral_move else max(TOLERANCE, self.min_layer_height)):
            if spiral_move:  # the first revolution of a vase: it starts right above the flat layers
                self._start(z, self.step if self.step is not None else z - lz)
            else:
                self.step = z - lz
                self._start(z, z - lz)
            result = NEW
        elif z < lz - TOLERANCE:
            result = self._rebase(z)
        self.spiral = spiral_move
        return result

    def _start(self, z: float, height: float) -> None:
        self.layer += 1
        self.layer_z = z
        self.height = round(height, 6)

    def _rebase(self, z: float) -> int:
        self.layer_z = z
        if self.layer == 1:
            self.height = z
        return REBASED


class FallbackTracker:
    """Live fallback with the tracker interface: ``feed(file_pos, line)`` per comment-free line.

    Costs one G-code parse per line (a few microseconds); it has no total, and no lookahead,
    so a purge line may fire layer 1 early (see the module docstring). Prefer a table from
    :func:`~octoprint_printmesh.layers.scanner.scan_file` whenever the file can be read.
    """

    def __init__(
        self, min_layer_height: float = 0.0, path: str | None = None, flavour: Flavour = DEFAULT_FLAVOUR
    ) -> None:
        self._min = min_layer_height
        self._path = path
        self._flavour = flavour
        self.reset()

    def reset(self) -> None:
        self._motion = Motion(self._flavour)
        self._detector = FallbackDetector(self._min)

    def feed(self, file_pos: int, line: str) -> LayerEvent | None:
        motion = self._motion
        flags = motion.feed(line)
        if not flags & EXTRUDES or self._detector.observe(flags, motion.z) != NEW:
            return None
        d = self._detector
        assert d.layer_z is not None
        return LayerEvent(
            layer=d.layer, z=d.layer_z, height=d.height, file_pos=file_pos, source="fallback", path=self._path
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

    def observe(self, flags: int, z: float | None, offset: int, file_pos: int) -> None:
        """Feed one line's motion flags; ``offset``/``file_pos`` locate that line."""
        if not flags & EXTRUDES:
            return
        d = self.detector
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
