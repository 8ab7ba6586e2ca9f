"""The one G-code motion model: the modes a line sets, where Z is, whether a line extrudes.

Two readers share it, so one line means the same thing to both:

* the hold (:func:`track` on :class:`Modes`): OctoPrint does not track positioning mode,
  extrusion mode, feed rate or homed axes, yet a head that leaves the print and comes back
  must restore all of them (a print resumed in the wrong extrusion mode or at travel speed
  ruins the part: Octolapse's blob complaints). The shell feeds every line OctoPrint sends
  through ``track`` and snapshots the result when a hold begins;
* the layer scanner and the fallback detector (:class:`Motion`): Z, and which lines extrude.
  It reads lines *without comments*, exactly as OctoPrint's hooks see them.

**The firmware's flavour** decides what G90/G91 do to the extruder (:func:`e_setting_after`):
Marlin 2's G90/G91 also switch E to absolute/relative (a later M82/M83 overrides it); Klipper
and Prusa's firmware keep the M82/M83 setting through G90, and G91 makes E relative only
while it is active. Slicers set M82/M83 after G90 so prints do not care, but a jog
(``G91 ... G90``) between M83 and the next extrusion does. The flavour comes from the
setting ``gcode.flavour`` or from the firmware's M115 report (:mod:`.firmware`).

Motion also follows G92 (``G92 E0`` resets E, ``G92 Z..`` re-bases Z, bare ``G92`` zeroes
all), G28 (homed axes become 0) and G0/G1/G2/G3 with X, Y, Z, E. Firmware retraction
(G10/G11) moves no axis, so it is not extrusion and changes no coordinate.

"Extrusion" means E increases *and* the head moves in XY. A retract, an unretract or a prime
blob (E alone), a wipe (XY while E decreases) and every travel are not extrusion. This is
what makes z-hops harmless: a hop raises Z on travel moves and lowers it again before the
next extruding move, so no extrusion ever happens at the hopped Z.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from octoprint_printmesh.gcode.parse import AXES, parse

Flavour = Literal["marlin", "klipper", "prusa"]
FLAVOURS: tuple[Flavour, ...] = ("marlin", "klipper", "prusa")
DEFAULT_FLAVOUR: Flavour = "marlin"  # see firmware.resolve_flavour for why
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


def e_setting_after(flavour: Flavour, g90: bool, e_relative: bool) -> bool:
    """The extruder's M82/M83 setting after G90 (``g90``) or G91: the one flavour rule.

    Marlin: G90 makes E absolute and G91 makes it relative. Klipper and Prusa: unchanged
    (E is still relative while G91 is active: see :meth:`Motion.e_is_relative`).
    """
    return not g90 if flavour == "marlin" else e_relative


@dataclass(frozen=True)
class Modes:
    """The modal state a hold saves at its start and restores before the print continues."""

    absolute: bool = True
    extrusion_relative: bool = False  # the M82/M83 setting, as the flavour leaves it
    feedrate: float | None = None
    homed: frozenset[str] = frozenset()


def track(modes: Modes, line: str, *, flavour: Flavour = DEFAULT_FLAVOUR) -> Modes:
    """The modes after ``line`` was sent, under the firmware ``flavour``.

    The restore sequence sends G90/G91 *then* M82/M83, which ends in the saved state under
    every flavour. Homing is tracked from G28 (all axes, or those named) and forgotten on
    M18/M84 (steppers off, unless only an idle timeout ``S`` is set) and on M112.
    """
    cmd = parse(line)
    if cmd is None:
        return modes
    code = cmd.code
    if code in ("G90", "G91"):
        g90 = code == "G90"
        return replace(modes, absolute=g90, extrusion_relative=e_setting_after(flavour, g90, modes.extrusion_relative))
    if code in ("M82", "M83"):
        return replace(modes, extrusion_relative=code == "M83")
    if code in ("G0", "G1", "G2", "G3"):
        feed = cmd.value("F")
        return replace(modes, feedrate=feed) if feed is not None and feed > 0 else modes
    if code == "G28":
        named = {a for a in AXES if cmd.has(a.upper())}
        return replace(modes, homed=modes.homed | (named or set(AXES)))
    if code in ("M18", "M84"):
        named = {a for a in AXES if cmd.has(a.upper())}
        if named or cmd.has("E"):
            return replace(modes, homed=modes.homed - named)  # only these steppers (E alone: none)
        if cmd.has("S"):
            return modes  # only sets the idle timeout
        return replace(modes, homed=frozenset())
    if code == "M112":
        return replace(modes, homed=frozenset())
    return modes


class Motion:
    """Modal state and position of one G-code stream; ``feed`` each comment-free line in order."""

    __slots__ = (
        "e",
        "e_follows_xyz",
        "e_resets",
        "flavour",
        "fw_retracted",
        "relative_e",
        "relative_xyz",
        "x",
        "y",
        "z",
    )

    def __init__(self, flavour: Flavour = DEFAULT_FLAVOUR) -> None:
        self.flavour = flavour
        self.e_follows_xyz = flavour != "marlin"  # G91 makes E relative while active, not as a setting
        self.relative_xyz = False
        self.relative_e = False  # the M82/M83 setting (under Marlin, G90/G91 set it too)
        self.x: float | None = None
        self.y: float | None = None
        self.z: float | None = None
        self.e = 0.0
        self.fw_retracted = False
        self.e_resets = 0  # G92 lines that set E: a start G-code purge ends with one

    def feed(self, line: str) -> int:
        """Apply one line; return ``EXTRUDES``/``Z_MOVED`` flags (0 for anything else, G92 included)."""
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
        elif head == "G90" or head == "G91":
            g90 = head == "G90"
            self.relative_xyz = not g90
            self.relative_e = e_setting_after(self.flavour, g90, self.relative_e)
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

    @property
    def e_is_relative(self) -> bool:
        """Whether an E word is a distance now (M83, or G91 under Klipper/Prusa)."""
        return self.relative_e or (self.relative_xyz and self.e_follows_xyz)

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
            if self.relative_e or (rel and self.e_follows_xyz):
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
            self.e_resets += 1
            return
        for token in parts[1:]:
            value = _num(token)
            if value is None:
                continue
            letter = token[0]
            if letter == "E":
                self.e = value
                self.e_resets += 1
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
