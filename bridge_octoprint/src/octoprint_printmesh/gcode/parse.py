"""G-code lines in and out: parsing a command, M114 replies, echo tokens, number format.

Only syntax lives here; what a line *does* to the printer's modes and position (which
depends on the firmware) is :mod:`.motion`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

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


def parse_position(line: str) -> dict[str, float] | None:
    """X/Y/Z (and E, F if present) from an M114 reply such as ``ok X:10.0 Y:20.0 Z:0.3 E:5.0 Count X:800``.

    The stepper counts after ``Count`` are ignored. None unless X, Y and Z are all there.
    """
    head = line.split("Count", 1)[0]
    values = {k.lower(): float(v) for k, v in _POSITION.findall(head)}
    return values if all(a in values for a in AXES) else None


def echo_line(token: str) -> str:
    """The line that makes the printer echo ``token`` once everything before it has been processed.

    ``A1`` makes Marlin (and OctoPrint's virtual printer) prefix ``//``, so the reply,
    ``//action:printmesh:<token>``, is an action command: OctoPrint hands it to the
    ``octoprint.comm.protocol.action`` hook and to no per-line hook, and takes no action of
    its own for a name it does not know.
    """
    return f"M118 A1 action:{TOKEN_PREFIX}{token}"


def barrier(token: str) -> tuple[str, str]:
    """M400 waits for every queued move to finish; the echo then proves it did."""
    return ("M400", echo_line(token))


def token_in(line: str) -> str | None:
    """The token a received line echoes, if any.

    A firmware without M118 answers ``echo:Unknown command: "M118 A1 action:printmesh:..."``,
    which quotes the token without having waited for anything: that is not a confirmation
    (nor an action command, so the hook never sees it).
    """
    if "unknown command" in line.lower():
        return None
    match = _TOKEN.search(line)
    return match.group(1) if match else None


def fmt(value: float) -> str:
    """A coordinate or feed rate as G-code: at most 3 decimals, no trailing zeros, never '-0'."""
    text = f"{round(value, 3):.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
