"""G-code lines in and out: parsing, the modal state a hold must restore, echo tokens.

OctoPrint does not track positioning mode, extrusion mode, feed rate or homed axes, yet
a head that leaves the print and comes back must restore all of them: a print that
resumes in the wrong extrusion mode or at travel speed ruins the part (Octolapse's blob
complaints). So the shell feeds every line OctoPrint *sent* through ``track`` and
snapshots the result when a hold begins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

TOKEN_PREFIX = "printmesh:"
AXES = ("x", "y", "z")
_WORD = re.compile(r"([A-Z])\s*([-+]?(?:\d+\.?\d*|\.\d+))?")
_CODE = re.compile(r"^([GMT])\s*(\d+)(?:\.(\d+))?")
_LINE_NUMBER = re.compile(r"^N\s*\d+\s*")
_POSITION = re.compile(r"\b([XYZEF]):\s*([-+]?\d+(?:\.\d+)?)")
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"([A-Za-z0-9._-]+)")


@dataclass(frozen=True)
class Gcode:
    """One parsed command: ``code`` like 'G1' or 'M106', ``params`` letter -> number (None if bare)."""

    code: str
    params: Mapping[str, float | None] = field(default_factory=dict)

    def has(self, letter: str) -> bool:
        return letter in self.params

    def value(self, letter: str) -> float | None:
        return self.params.get(letter)


def parse(line: str) -> Gcode | None:
    """Parse one line; None for comments, blanks, at-commands and anything without a G/M/T code.

    Line numbers (``N12``), checksums (``*34``) and ``;`` comments are dropped, codes are
    normalised (``g01`` -> ``G1``), and words may be glued together (``G1X10Y5``).
    """
    text = line.split(";", 1)[0].split("*", 1)[0].strip().upper()
    text = _LINE_NUMBER.sub("", text)
    match = _CODE.match(text)
    if not match:
        return None
    letter, number, sub = match.groups()
    code = f"{letter}{int(number)}" + (f".{sub}" if sub is not None else "")
    if code in ("M117", "M118", "M23", "M28", "M30", "M32", "M928"):
        return Gcode(code)  # the rest is free text (messages, file names), not parameters
    params: dict[str, float | None] = {}
    for word_letter, word_value in _WORD.findall(text[match.end() :]):
        params[word_letter] = float(word_value) if word_value else None
    return Gcode(code, params)


@dataclass(frozen=True)
class Modes:
    """The modal state a hold saves at its start and restores before the print continues."""

    absolute: bool = True
    extrusion_relative: bool = False
    feedrate: float | None = None
    homed: frozenset[str] = frozenset()


def track(modes: Modes, line: str, *, g90_sets_extruder: bool = True) -> Modes:
    """The modes after ``line`` was sent.

    ``g90_sets_extruder``: Marlin 2's G90/G91 also switch the extruder to absolute/relative
    (M82/M83 then override it). Klipper and Prusa's firmware keep the M82/M83 setting
    through G90 (G91 makes E relative only while it is active): pass False there, and
    ``extrusion_relative`` is that setting. Octolapse users learnt the difference the hard
    way; the restore sequence sends G90/G91 *then* M82/M83, which ends in the saved state
    under either behaviour.
    Homing is tracked from G28 (all axes, or those named) and forgotten on M18/M84 (steppers
    off, unless only an idle timeout ``S`` is set) and on M112 (emergency stop).
    """
    cmd = parse(line)
    if cmd is None:
        return modes
    code = cmd.code
    if code in ("G90", "G91"):
        absolute = code == "G90"
        if g90_sets_extruder:
            return replace(modes, absolute=absolute, extrusion_relative=not absolute)
        return replace(modes, absolute=absolute)
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


def parse_position(line: str) -> dict[str, float] | None:
    """X/Y/Z (and E, F if present) from an M114 reply such as ``ok X:10.0 Y:20.0 Z:0.3 E:5.0 Count X:800``.

    The stepper counts after ``Count`` are ignored. None unless X, Y and Z are all there.
    """
    head = line.split("Count", 1)[0]
    values = {k.lower(): float(v) for k, v in _POSITION.findall(head)}
    return values if all(a in values for a in AXES) else None


def echo_line(token: str) -> str:
    """The line that makes the printer echo ``token`` once everything before it has been processed.

    ``E1`` makes Marlin prefix ``echo:``, which OctoPrint handles as a harmless message.
    """
    return f"M118 E1 {TOKEN_PREFIX}{token}"


def barrier(token: str) -> tuple[str, str]:
    """M400 waits for every queued move to finish; the echo then proves it did."""
    return ("M400", echo_line(token))


def token_in(line: str) -> str | None:
    """The token a received line echoes, if any.

    A firmware without M118 answers ``echo:Unknown command: "M118 E1 printmesh:..."``,
    which quotes the token without having waited for anything: that is not a confirmation.
    """
    if "unknown command" in line.lower():
        return None
    match = _TOKEN.search(line)
    return match.group(1) if match else None


def fmt(value: float) -> str:
    """A coordinate or feed rate as G-code: at most 3 decimals, no trailing zeros, never '-0'."""
    text = f"{round(value, 3):.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
