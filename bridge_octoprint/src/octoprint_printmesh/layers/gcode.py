"""A minimal G-code motion model: where Z is, and whether a line extrudes.

Both the marker scanner (Cura's ``;LAYER:n`` carries no Z, so Z is taken where the layer
first extrudes) and the fallback detector (a layer is extrusion at a new maximum Z) need
the same two facts, so they share this model. It reads lines *without comments*, exactly as
OctoPrint's hooks see them, and keeps only what those facts depend on:

* G90/G91 (XYZ absolute/relative) and M82/M83 (E absolute/relative). G91 makes E relative
  too while it is active, and G90 gives E back its M82/M83 mode: that is what Klipper and
  Prusa's firmware do (Marlin 2's G90 also resets M83; slicers never rely on the difference
  inside a print, they set M82/M83 once after G90).
* G92 (set position: ``G92 E0`` resets E, ``G92 Z..`` re-bases Z; bare ``G92`` zeroes all),
  G28 (homed axes become 0).
* G0/G1/G2/G3 with X, Y, Z, E. Firmware retraction (G10/G11) moves no axis, so it is not
  extrusion and changes no coordinate.

"Extrusion" means E increases *and* the head moves in XY. A retract, an unretract or a prime
blob (E alone), a wipe (XY while E decreases) and every travel are not extrusion. This is
what makes z-hops harmless: a hop raises Z on travel moves and lowers it again before the
next extruding move, so no extrusion ever happens at the hopped Z.
"""

from __future__ import annotations

import re

EXTRUDES = 1  # the line is an extruding move
Z_MOVED = 2  # the line itself changed Z (with EXTRUDES: a spiral-vase move)

_TOKEN = re.compile(r"[A-Z][^A-Z\s]*")
_EPS = 1e-9
_MOVES = frozenset(("G0", "G1", "G00", "G01"))
_ARCS = frozenset(("G2", "G3", "G02", "G03"))


def _num(token: str) -> float | None:
    try:
        return float(token[1:])
    except ValueError:
        return None


def _tokens(line: str) -> list[str]:
    """Split ``G1 X1 Y2`` and also ``G1X1Y2`` (no spaces, which firmwares accept too)."""
    parts = line.split()
    if parts and not parts[0][1:].isdigit():
        parts = _TOKEN.findall(line)
    return parts


class Motion:
    """Modal state of one G-code stream; ``feed`` each comment-free line in order."""

    __slots__ = ("e", "fw_retracted", "relative_e", "relative_xyz", "x", "y", "z")

    def __init__(self) -> None:
        self.relative_xyz = False
        self.relative_e = False
        self.x: float | None = None
        self.y: float | None = None
        self.z: float | None = None
        self.e = 0.0
        self.fw_retracted = False

    def feed(self, line: str) -> int:
        """Apply one line; return ``EXTRUDES``/``Z_MOVED`` flags (0 for anything else)."""
        if not line.isupper():  # also true for "" and for lines with no letters
            line = line.upper()
        if "*" in line:  # a checksum written into the file
            line = line[: line.index("*")]
        parts = _tokens(line)
        if not parts:
            return 0
        head = parts[0]
        if head[0] == "N" and len(parts) > 1:  # a line number written into the file
            parts = parts[1:]
            head = parts[0]
        if head in _MOVES:
            return self._move(parts, arc=False)
        if head in _ARCS:
            return self._move(parts, arc=True)
        if head == "G92":
            self._set_position(parts)
        elif head == "G90":
            self.relative_xyz = False
        elif head == "G91":
            self.relative_xyz = True
        elif head == "M82":
            self.relative_e = False
        elif head == "M83":
            self.relative_e = True
        elif head == "G28":
            self._home(parts)
        elif head == "G10":
            # RepRapFirmware also uses G10 P/L for tool offsets: only a bare G10 retracts.
            if all(p[0] not in "PL" for p in parts[1:]):
                self.fw_retracted = True
        elif head == "G11":
            self.fw_retracted = False
        return 0

    def _move(self, parts: list[str], arc: bool) -> int:
        x = y = z = e = None
        for token in parts[1:]:
            letter = token[0]
            if letter == "X":
                x = _num(token)
            elif letter == "Y":
                y = _num(token)
            elif letter == "Z":
                z = _num(token)
            elif letter == "E":
                e = _num(token)
        flags = 0
        rel = self.relative_xyz
        moved_xy = arc
        if x is not None:
            old = self.x
            new = (None if old is None else old + x) if rel else x
            moved_xy = moved_xy or new is None or old is None or abs(new - old) > _EPS
            self.x = new
        if y is not None:
            old = self.y
            new = (None if old is None else old + y) if rel else y
            moved_xy = moved_xy or new is None or old is None or abs(new - old) > _EPS
            self.y = new
        if z is not None:
            old = self.z
            new = (None if old is None else old + z) if rel else z
            if new is None or old is None or abs(new - old) > _EPS:
                flags = Z_MOVED
            self.z = new
        if e is not None:
            if self.relative_e or rel:
                delta = e
                self.e += e
            else:
                delta = e - self.e
                self.e = e
            if delta > _EPS and moved_xy:
                flags |= EXTRUDES
        return flags

    def _set_position(self, parts: list[str]) -> None:
        if len(parts) == 1:
            self.x = self.y = self.z = 0.0
            self.e = 0.0
            return
        for token in parts[1:]:
            value = _num(token)
            if value is None:
                continue
            letter = token[0]
            if letter == "E":
                self.e = value
            elif letter == "Z":
                self.z = value
            elif letter == "X":
                self.x = value
            elif letter == "Y":
                self.y = value

    def _home(self, parts: list[str]) -> None:
        axes = {p[0] for p in parts[1:]} & {"X", "Y", "Z"}
        if not axes:  # G28, or Prusa's "G28 W": all axes
            axes = {"X", "Y", "Z"}
        if "X" in axes:
            self.x = 0.0
        if "Y" in axes:
            self.y = 0.0
        if "Z" in axes:
            self.z = 0.0
