"""Write tests/fixtures/gcode_cases: small G-code files for two layer-detection cases, with expected tables.

No slicer is installed on the build machine (``which prusa-slicer PrusaSlicer slic3r cura
CuraEngine`` finds none, and PyPI has no slicer to pip-install), so this script *is* the
slicer: it prints square "parts" with two perimeters and a few infill lines, the way
PrusaSlicer lays out a file (absolute E, retract before every travel, z-lift between
objects), and it writes down, as it goes, where each layer starts. The expected tables
come from that bookkeeping, not from the code under test.

* ``purge_same_z``: no layer comments; Prusa's MK3 start G-code draws its purge line at the
  first layer's Z (0.2) in front of the bed, resets E, travels to the part, which starts
  at the same Z. Layer 1 is the part's first extrusion, not the purge.
* ``sequential``: two objects printed one at a time (PrusaSlicer's "complete objects"), with
  its ``;LAYER_CHANGE`` / ``;Z:`` / ``;HEIGHT:`` markers. The second object restarts at Z0.2
  after the first reached its top; layers are numbered on across objects, as the markers do.

    python3 scripts/make-layer-case-fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gcode_cases"
LAYER = 0.2
SIZE = 10.0


class Writer:
    """Accumulates lines and remembers each layer's marker line and first extruding line."""

    def __init__(self, markers: bool) -> None:
        self.markers = markers
        self.lines: list[str] = []
        self.e = 0.0
        self.x = self.y = 0.0
        self.marker_rows: list[dict[str, object]] = []
        self.first_extrusion: list[int] = []  # line index of each layer's first extruding move
        self._want_first = False

    def add(self, line: str) -> int:
        self.lines.append(line)
        return len(self.lines) - 1

    def travel(self, x: float, y: float) -> None:
        self.add(f"G1 E{self.e - 0.8:.5f} F2100")  # retract
        self.add(f"G1 X{x:.3f} Y{y:.3f} F9000")
        self.add(f"G1 E{self.e:.5f} F2100")  # unretract
        self.x, self.y = x, y

    def extrude(self, x: float, y: float) -> None:
        dist = ((x - self.x) ** 2 + (y - self.y) ** 2) ** 0.5
        self.e += dist * 0.033
        index = self.add(f"G1 X{x:.3f} Y{y:.3f} E{self.e:.5f} F1500")
        if self._want_first:
            self.first_extrusion.append(index)
            self._want_first = False
        self.x, self.y = x, y

    def layer(self, z: float, height: float) -> None:
        if self.markers:
            self.add(";LAYER_CHANGE")
            self.add(f";Z:{z:.3f}")
            self.add(f";HEIGHT:{height:.3f}")
        index = self.add(f"G1 Z{z:.3f} F720")
        self.marker_rows.append({"z": round(z, 6), "height": round(height, 6), "line": index})
        self._want_first = True

    def square(self, cx: float, cy: float) -> None:
        for inset in (0.0, 0.45):
            h = SIZE / 2 - inset
            corners = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h), (cx - h, cy - h)]
            self.travel(*corners[0])
            for corner in corners[1:]:
                self.extrude(*corner)
        for i in range(1, 5):  # infill lines
            y = cy - SIZE / 2 + 2 * i
            self.travel(cx - SIZE / 2 + 1, y)
            self.extrude(cx + SIZE / 2 - 1, y)

    def data(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


START = ["M107", "G90", "M82", "M104 S0", "M140 S0", "G28 W ; home all without mesh bed level", "G1 Z5 F5000"]


def purge_same_z() -> tuple[Writer, str]:
    w = Writer(markers=False)
    for line in [*START, "G1 Y-3.0 F1000.0 ; go outside print area", "G1 Z0.2 F720", "G92 E0.0"]:
        w.add(line)
    w.add("G1 X60.0 E9.0 F1000.0 ; intro line")
    w.add("G1 X100.0 E12.5 F1000.0 ; intro line")
    w.add("G92 E0.0")
    w.e, w.x, w.y = 0.0, 100.0, -3.0
    for n in range(8):
        z = LAYER * (n + 1)
        w.layer(z, LAYER)
        w.square(100, 100)
    w.add("M84")
    return w, "purge line at the first layer's Z (0.2) in front of the bed, G92 E0, then the part at Z0.2"


def sequential() -> tuple[Writer, str]:
    w = Writer(markers=True)
    for line in [*START, "G92 E0"]:
        w.add(line)
    for cx in (80.0, 120.0):
        for n in range(6):
            z = LAYER * (n + 1)
            w.layer(z, LAYER)
            w.square(cx, 100)
        w.add(f"G1 Z{6 * LAYER + 2:.3f} F720 ; lift clear of the object")
    w.add("M84")
    return w, "two 1.2 mm squares printed one at a time (complete objects), ;LAYER_CHANGE/;Z:/;HEIGHT: markers"


def positions(data: bytes) -> list[tuple[int, int]]:
    """(offset, OctoPrint filepos) of each line: ASCII with LF ends, so filepos = offset + length."""
    out, off = [], 0
    for raw in data.splitlines(keepends=True):
        out.append((off, off + len(raw)))
        off += len(raw)
    return out


def table(w: Writer, line_of: list[int]) -> list[dict[str, object]]:
    pos = positions(w.data())
    rows = []
    for i, (row, line) in enumerate(zip(w.marker_rows, line_of, strict=True)):
        offset, file_pos = pos[line]
        rows.append({"layer": i + 1, "z": row["z"], "height": row["height"], "offset": offset, "file_pos": file_pos})
    return rows


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (w, note) in {"purge_same_z": purge_same_z(), "sequential": sequential()}.items():
        data = w.data()
        (OUT / f"{name}.gcode").write_bytes(data)
        markers = [{**r, "slicer_layer": None} for r in table(w, [int(str(m["line"])) for m in w.marker_rows])]
        doc = {
            "file": f"{name}.gcode",
            "generator": "scripts/make-layer-case-fixtures.py",
            "settings": note,
            "style": "prusa" if w.markers else None,
            "file_size": len(data),
            "markers": markers if w.markers else None,  # first command line after each marker
            "extrusion": table(w, w.first_extrusion),  # each layer's first extruding line: the fallback's rows
        }
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{name:14s} {len(data):6d} bytes  {len(w.marker_rows)} layers")


if __name__ == "__main__":
    main()
