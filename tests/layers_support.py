"""Helpers for the layer tests (no tests here): import, fixtures, and OctoPrint's view of a file.

The ``layers`` subpackage imports no OctoPrint, and the package's ``__init__`` loads the
plugin class lazily, so it imports in the dev venv like any module.
"""

from __future__ import annotations

import importlib
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "gcode"
BOM = b"\xef\xbb\xbf"


def load_layers() -> types.ModuleType:
    return importlib.import_module("octoprint_printmesh.layers")


def expected(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


def strip_comment(line: str) -> str:
    """What OctoPrint's strip_comment does: cut at the first ';' not escaped by a backslash."""
    escaped = False
    for i, c in enumerate(line):
        if c == ";" and not escaped:
            return line[:i]
        escaped = c == "\\" and not escaped
    return line


def octoprint_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(filepos tag, line) for every line OctoPrint sends from ``path``, in order.

    Mirrors PrintingGcodeFileInformation (OctoPrint 1.11): text mode with ``newline=""`` and
    ``utf-8-sig``/``errors="replace"``, position = BOM + sum of the UTF-8 lengths of the lines
    read, comment-only and blank lines skipped but counted.
    """
    pos = len(BOM) if path.read_bytes()[:3] == BOM else 0
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        for raw in iter(f.readline, ""):
            pos += len(raw.encode("utf-8"))
            line = strip_comment(raw).strip()
            if line:
                yield pos, line


def stripped_copy(path: Path, out: Path) -> Path:
    """The file with every comment removed (what a comment-stripping post-processor leaves)."""
    lines = []
    for raw in path.read_bytes().decode("utf-8", "replace").splitlines():
        line = strip_comment(raw).rstrip()
        if line.strip():
            lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out


def naive_extrusions(path: Path) -> list[int]:
    """Filepos tags of the lines that extrude (E grows while X/Y are given), read naively."""
    out, e, relative = [], 0.0, False
    for pos, line in octoprint_lines(path):
        words = line.upper().split()
        head, args = words[0], {w[0]: w[1:] for w in words[1:]}
        if head in ("M83", "M82"):
            relative = head == "M83"
        elif head == "G92" and "E" in args:
            e = float(args["E"])
        elif head in ("G0", "G1", "G2", "G3") and "E" in args:
            value = float(args["E"])
            delta = value if relative else value - e
            e = e + value if relative else value
            if delta > 0 and ("X" in args or "Y" in args):
                out.append(pos)
    return out
