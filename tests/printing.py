"""Real sliced files made printable on the virtual printer, and reading OctoPrint's serial log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "gcode"
SEND = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - Send: (?:N\d+ )?([^*]*)")
RECV = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - Recv: (.*)$")
FAST = ["M220 S1000", "M221 S1000"]  # the virtual printer moves 10x faster


def printable(name: str, *, without_homing: bool = False) -> bytes:
    """The fixture with its waits for heat-up (and optionally G28) replaced at the same length,
    so byte offsets in its layer table still hold."""
    data = (FIXTURES / f"{name}.gcode").read_bytes()
    data = re.sub(rb"(?m)^M1(09|90)\b", b"M117", data)
    return re.sub(rb"(?m)^G28\b", b"M117", data) if without_homing else data


def command_lines(data: bytes) -> list[tuple[int, str]]:
    """(offset, command) of every line OctoPrint sends from the file, comments stripped."""
    out, offset = [], 0
    for raw in data.splitlines(keepends=True):
        text = raw.decode("latin-1").split(";", 1)[0].strip()
        if text:
            out.append((offset, text))
        offset += len(raw)
    return out


@dataclass(frozen=True)
class Mark:
    """An '@printmesh layer' line in a stored file: where it sits in the original, and OctoPrint's tag for it."""

    layer: int
    original_offset: int  # of the original line right after the mark
    file_pos: int  # OctoPrint's filepos tag of the mark line in the stored file


def marks_in(stored: bytes) -> tuple[list[Mark], bytes]:
    """The layer marks of a stored file, and the file with every '@printmesh' line taken out."""
    marks, kept, pos, original = [], [], 0, 0
    for raw in stored.splitlines(keepends=True):
        pos += len(raw)
        if raw.lstrip().startswith(b"@printmesh"):
            words = raw.split()
            if words[1] == b"layer":
                marks.append(Mark(int(words[2]), original, pos))
            continue
        kept.append(raw)
        original += len(raw)
    return marks, b"".join(kept)


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def sends(serial_log: str) -> list[tuple[float, str]]:
    """(time, command) of every line sent to the printer, line numbers and checksums removed."""
    return [(_stamp(m.group(1)), m.group(2).strip()) for m in map(SEND.match, serial_log.splitlines()) if m]


def aligned(sent: list[tuple[float, str]], commands: list[str]) -> list[int]:
    """Where each file command was sent, matched in order (OctoPrint adds its own lines,
    such as M105 polls, and a hold adds ours, between them)."""
    out: list[int] = []
    for i, (_, cmd) in enumerate(sent):
        if len(out) < len(commands) and cmd == commands[len(out)]:
            out.append(i)
    return out


def file_indexes(sent: list[tuple[float, str]], commands: list[str]) -> list[int]:
    """As ``aligned``, asserting that every file command was sent, once and in order."""
    out = aligned(sent, commands)
    assert len(out) == len(commands), f"file line {len(out)} ({commands[len(out)]!r}) never sent"
    return out


def sent_times(serial_log: str, commands: list[str]) -> list[float]:
    """The send time of each file command found in the log."""
    sent = sends(serial_log)
    return [sent[i][0] for i in aligned(sent, commands)]


def hold_windows(sent: list[tuple[float, str]]) -> list[tuple[int, int]]:
    """(first, last) send index of each printmesh hold: from its M400 (before M114 and the
    first echo token) to the echo token of its release."""
    tokens: dict[str, list[int]] = {}
    for i, (_, cmd) in enumerate(sent):
        if cmd.startswith("M118 A1 action:printmesh:"):
            hold = cmd.rsplit(":", 1)[1].rsplit(".", 1)[0]  # <session>.<hold id>
            tokens.setdefault(hold, []).append(i)
    return [(idx[0] - 2, idx[-1]) for idx in tokens.values()]


AXES = re.compile(r"([XYZE])(-?[0-9.]+)")


def check_serial_log(serial_log: str, data: bytes, since: int = 0, size: float = 200.0) -> None:
    """A print's file lines (sent from index ``since`` on) sent once and in order; nothing extruded
    inside a hold; every G0/G1 anywhere inside the ``size`` mm default volume."""
    sent = sends(serial_log)[since:]
    file_indexes(sent, [c for _, c in command_lines(data)])
    windows = hold_windows(sent)
    for i, (_, cmd) in enumerate(sent):
        if cmd.split(" ", 1)[0] not in ("G0", "G1"):
            continue
        values = {a: float(v) for a, v in AXES.findall(cmd)}
        assert all(0 <= values[a] <= size for a in "XYZ" if a in values), cmd
        held = any(first <= i <= last for first, last in windows)
        assert not (held and "E" in values), f"extrusion during a hold: {cmd}"


def is_extrusion(cmd: str) -> bool:
    return cmd.split()[0] in ("G1", "G2", "G3") and " E" in f" {cmd}" and ("X" in cmd or "Y" in cmd)
