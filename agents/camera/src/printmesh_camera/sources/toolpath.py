"""The extruding moves of a G-code file, grouped by physical layer, parsed once per file.

Only what the virtual camera draws is kept: straight XY segments that extrude, with their
Z and width. A layer is a distinct Z at which something was extruded, counted from 1 in
ascending order, which is how the bridge counts physical layers of a planar print.
Travel moves, retractions (E without XY) and Z hops leave nothing behind and are dropped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from printmesh_camera.sources.base import Image

DEFAULT_WIDTH = 0.45  # mm, when the file says nothing (PrusaSlicer and Cura write ;WIDTH:)


@dataclass(frozen=True)
class Layer:
    """One physical layer: ``segments`` is float32 (N, 5): x0, y0, x1, y1, width (mm)."""

    number: int
    z: float
    height: float
    segments: Image


@dataclass(frozen=True)
class Toolpath:
    layers: list[Layer]

    @property
    def count(self) -> int:
        return len(self.layers)

    def bounds(self) -> tuple[float, float, float, float, float]:
        """(x_min, y_min, x_max, y_max, z_max) of everything extruded; zeros for an empty file."""
        if not self.layers:
            return (0.0, 0.0, 0.0, 0.0, 0.0)
        seg = np.concatenate([layer.segments for layer in self.layers])
        xs, ys = seg[:, [0, 2]], seg[:, [1, 3]]
        return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()), self.layers[-1].z)


def _words(code: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for word in code.split()[1:]:
        if len(word) > 1:
            try:
                out[word[0].upper()] = float(word[1:])
            except ValueError:
                continue
    return out


def parse_lines(lines: list[str]) -> Toolpath:
    """Parse G-code text lines (G0/G1, G90/G91, M82/M83, G92; ;WIDTH: comments)."""
    x = y = z = e = 0.0
    absolute, absolute_e = True, True
    width = DEFAULT_WIDTH
    by_z: dict[float, list[tuple[float, float, float, float, float]]] = {}
    for raw in lines:
        code, _, comment = raw.partition(";")
        if comment.startswith("WIDTH:"):
            with contextlib.suppress(ValueError):
                width = float(comment[6:]) or DEFAULT_WIDTH
        code = code.strip()
        if not code:
            continue
        head = code.split(maxsplit=1)[0].upper()
        if head in ("G0", "G1"):
            w = _words(code)
            nx = (w["X"] if absolute else x + w["X"]) if "X" in w else x
            ny = (w["Y"] if absolute else y + w["Y"]) if "Y" in w else y
            nz = (w["Z"] if absolute else z + w["Z"]) if "Z" in w else z
            extruded = 0.0
            if "E" in w:
                extruded = w["E"] - e if absolute_e else w["E"]
                e = w["E"] if absolute_e else e + w["E"]
            if extruded > 0 and (nx != x or ny != y):
                by_z.setdefault(round(nz, 3), []).append((x, y, nx, ny, width))
            x, y, z = nx, ny, nz
        elif head == "G90":
            absolute = absolute_e = True
        elif head == "G91":
            absolute = absolute_e = False
        elif head == "M82":
            absolute_e = True
        elif head == "M83":
            absolute_e = False
        elif head == "G92":
            w = _words(code)
            e = w.get("E", e)
            x, y, z = w.get("X", x), w.get("Y", y), w.get("Z", z)
    layers: list[Layer] = []
    previous = 0.0
    for number, height_z in enumerate(sorted(h for h in by_z if h > 0), start=1):
        segments = np.asarray(by_z[height_z], dtype=np.float32).reshape(-1, 5)
        layers.append(Layer(number, height_z, max(0.05, min(height_z - previous, 1.0)), segments))
        previous = height_z
    return Toolpath(layers)


def parse_file(path: Path) -> Toolpath:
    with path.open(encoding="utf-8", errors="replace") as handle:
        return parse_lines(handle.readlines())
