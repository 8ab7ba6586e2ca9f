"""Per-line bookkeeping of the scanner: marker rows per style, and the motion model.

Interpreting every line is what costs time (a few microseconds a line in Python), and most
lines do not matter to the markers. So the collector runs in two gears:

* **light** (marker scans): comment lines are parsed; of the command lines only those that
  set Z or a mode (G9x, M8x, G28, G2/G3) go through :class:`Motion`, and the last G line
  with an E word is remembered unparsed;
* **full**: every command line goes through :class:`Motion`. This is the gear between a
  layer marker and that layer's first extrusion (where a marker without Z takes its Z, and
  until which attribute comments like ``;HEIGHT:`` belong to it), and the whole file long
  when the fallback table is wanted. Switching up seeds E from the remembered line and
  forgets X/Y (the first XY move then counts as movement).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, EXTRUDES, Z_MOVED, Flavour, Motion
from octoprint_printmesh.layers.fallback import FallbackRows
from octoprint_printmesh.layers.markers import (
    PRIORITY,
    TAKES_VALUE,
    TAKES_Z,
    parse_comment,
    parse_generator,
    parse_trailing,
)
from octoprint_printmesh.layers.upload_marks import LAYER_MARK
from printmesh_core.models.layers import MarkerStyle

HEADER_BYTES = 16384  # the generator comment is looked for near the start only
# An extruding move that also climbs less than this is a spiral-vase segment (a revolution
# climbs one layer height over dozens of segments); more is a layer change that extrudes.
SPIRAL_RISE = 0.05
_MODAL = frozenset((b"G9", b"M8", b"G2", b"G3"))  # G90/91/92, M82/83, G28 and arcs
_PLAIN_MOVES = frozenset((b"G0 ", b"G1 "))
_Z_WORD = re.compile(rb" Z([-+]?(?:\d+\.?\d*|\.\d+))(?=\s|$)")


@dataclass(slots=True)
class Row:
    """A layer as one marker style sees it."""

    style: MarkerStyle
    number: int | None
    z: float | None  # from the marker or its attribute lines
    height: float | None = None
    offset: int = -1  # of the first command line; -1 until it is seen
    file_pos: int = -1
    z_seen: float | None = None  # Z of the first extrusion (where a spiral starts), else after the first line


class Collector:
    def __init__(self, full: bool, min_layer_height: float = 0.0, flavour: Flavour = DEFAULT_FLAVOUR) -> None:
        self.full = full  # interpret every line (needed for the fallback table)
        self.motion = Motion(flavour)
        self.fallback = FallbackRows(min_layer_height)
        self.rows: dict[MarkerStyle, list[Row]] = {s: [] for s in PRIORITY}
        self.waiting: list[Row] = []  # started, first command line not seen yet
        self.open: list[Row] = []  # not extruded yet: they take attributes and the extrusion Z
        self.generator: str | None = None
        self._e_line: bytes | None = None  # last G line with E that Motion has not seen
        self.e_block: tuple[bytes, int] | None = None  # or: look for it in block before this offset
        self.e_carry: bytes | None = None  # the last G line with E of the previous block
        self.marks: list[tuple[int, int]] = []  # (offset, file_pos) of each '@printmesh layer' line

    def start(self, row: Row) -> None:
        rows = self.rows[row.style]
        if rows and rows[-1] in self.open:  # a new marker of a style closes its previous layer
            self.open.remove(rows[-1])
        rows.append(row)
        self.open.append(row)
        self.waiting.append(row)

    @property
    def every_line(self) -> bool:
        """Whether the next command line must be interpreted (else only Z and mode lines are)."""
        return self.full or bool(self.open) or bool(self.waiting)

    def header(self, head: bytes) -> None:
        """Find the slicer's name in the first bytes of the file."""
        for line in head.splitlines():
            text = line.strip()
            if text[:1] == b";" and self.generator is None:
                self.generator = parse_generator(text)

    def comment(self, text: bytes, offset: int) -> None:
        """A comment-only line (stripped, starting with ``;``) that starts at ``offset``."""
        c = parse_comment(text)
        if c is None:
            return
        if c.style is not None:
            self.start(Row(c.style, c.number, c.z))
            return
        for row in self.open:
            if c.z is not None and row.style in TAKES_Z and row.z is None:
                row.z = c.z
            elif c.height is not None and row.style in TAKES_Z and row.height is None:
                row.height = c.height
            elif c.value is not None and row.style in TAKES_VALUE and row.z is None:
                row.z = c.value

    def command(self, line: bytes, offset: int, file_pos: int) -> None:
        """A command line (stripped) that starts at ``offset``; ``file_pos`` is OctoPrint's tag for it."""
        first = self.waiting
        if first:
            for row in first:
                row.offset, row.file_pos = offset, file_pos
            self.waiting = []
        if line[:1] == b"@":  # an at-command: OctoPrint never sends it, so it moves nothing
            if line.startswith(LAYER_MARK):
                self.marks.append((offset, file_pos))
            for row in first:
                row.z_seen = self.motion.z
            return
        cmd = line.rstrip()
        if b";" in line:
            number = parse_trailing(line)
            if number is not None:
                row = Row("slic3r_comments", number, None, offset=offset, file_pos=file_pos)
                self.start(row)
                self.waiting.remove(row)
                first = [*first, row]
            cmd = line[: line.index(b";")].rstrip()
        if not (self.full or self.open or first):
            self._light(cmd)
            return
        if self._e_line is not None or self.e_block is not None:
            self._sync()
        motion = self.motion
        z_before, resets = motion.z, motion.e_resets
        flags = motion.feed(cmd.decode("latin-1"))
        for row in first:
            row.z_seen = motion.z
        if flags & EXTRUDES:
            if self.open:
                z = motion.z
                if flags & Z_MOVED and z is not None and z_before is not None and abs(z - z_before) < SPIRAL_RISE:
                    z = z_before  # a spiral-vase move: the layer is where the climb starts
                for row in self.open:
                    row.z_seen = z
                self.open.clear()
            if self.full:
                self.fallback.observe(flags, motion.z, offset, file_pos)
        elif self.full and motion.e_resets != resets:
            self.fallback.e_reset()

    def _light(self, cmd: bytes) -> None:
        head = cmd[:3]
        if head in _PLAIN_MOVES and not self.motion.relative_xyz:  # the common z-hop / layer move
            m = _Z_WORD.search(cmd)
            if m is not None:
                with contextlib.suppress(ValueError):
                    self.motion.z = float(m.group(1))
                if b"E" in cmd:  # this line's E is the newest: older hints are void
                    self._e_line, self.e_block = cmd, None
                return
        head = cmd[:2]
        if b"Z" in cmd or head in _MODAL or not head[:1].isupper() or head[:1] == b"N":
            self.motion.feed(cmd.decode("latin-1"))
            if b"E" in cmd:
                self._e_line = self.e_block = None
        elif head[:1] == b"G" and b"E" in cmd:
            self._e_line, self.e_block = cmd, None

    def _sync(self) -> None:
        """Bring Motion up to date before interpreting every line again."""
        motion = self.motion
        line = self._e_line
        if self.e_block is not None:
            line = last_e_line(*self.e_block) or self.e_carry
        for token in (line or b"").decode("latin-1").split()[1:]:
            if token[:1] == "E":
                with contextlib.suppress(ValueError):
                    motion.e = float(token[1:])
        motion.x = motion.y = None
        self._e_line = None
        self.e_block = None


def last_e_line(block: bytes, end: int) -> bytes | None:
    """The last line before ``end`` in ``block`` that is a G command with an E word."""
    while end > 0:
        start = block.rfind(b"\n", 0, end - 1) + 1
        text = block[start:end].lstrip()
        if text[:1] == b"G":
            cmd = text.split(b";", 1)[0]
            if b"E" in cmd:
                return cmd.rstrip()
        end = start
    return None
