"""Write a 200-layer test part (a rounded tower, 0.2 mm layers) as G-code, for the virtual camera's benchmark.

The shape is what slicers make of a real part: a skirt, three perimeters of a 48-sided
outline whose radius swells with height, sparse diagonal infill alternating direction per
layer, and solid top layers, with PrusaSlicer's ``;LAYER_CHANGE`` / ``;Z:`` / ``;WIDTH:``
comments and absolute E. Deterministic: the same file every run.

    .venv/bin/python bench/make_tall_part.py OUT.gcode [--layers 200]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

CENTRE = (100.0, 100.0)
SIDES = 48
WIDTH = 0.45
LAYER = 0.2


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.e = 0.0
        self.at = CENTRE

    def travel(self, x: float, y: float) -> None:
        self.lines.append(f"G1 X{x:.3f} Y{y:.3f} F9000")
        self.at = (x, y)

    def extrude(self, x: float, y: float) -> None:
        self.e += math.hypot(x - self.at[0], y - self.at[1]) * 0.033
        self.lines.append(f"G1 X{x:.3f} Y{y:.3f} E{self.e:.5f} F1800")
        self.at = (x, y)

    def loop(self, radius: float) -> None:
        pts = [(CENTRE[0] + radius * math.cos(2 * math.pi * k / SIDES),
                CENTRE[1] + radius * math.sin(2 * math.pi * k / SIDES)) for k in range(SIDES + 1)]  # fmt: skip
        self.travel(*pts[0])
        for p in pts[1:]:
            self.extrude(*p)


def radius_at(layer: int, layers: int) -> float:
    return 12.0 + 4.0 * math.sin(math.pi * layer / layers)


def infill(w: Writer, radius: float, layer: int, spacing: float) -> None:
    """Parallel lines at +-45 degrees clipped to the circle inside the perimeters."""
    angle = math.pi / 4 if layer % 2 else -math.pi / 4
    ux, uy = math.cos(angle), math.sin(angle)
    vx, vy = -uy, ux
    r = radius - 3 * WIDTH
    offset = -r + spacing / 2
    flip = False
    while offset < r:
        half = math.sqrt(max(0.0, r * r - offset * offset))
        a = (CENTRE[0] + vx * offset - ux * half, CENTRE[1] + vy * offset - uy * half)
        b = (CENTRE[0] + vx * offset + ux * half, CENTRE[1] + vy * offset + uy * half)
        if flip:
            a, b = b, a
        w.travel(*a)
        w.extrude(*b)
        flip = not flip
        offset += spacing


def generate(layers: int) -> str:
    w = Writer()
    w.lines += ["; tall test part for bench/camera_virtual.py", "G28", "G90", "M82", "G92 E0"]
    for layer in range(1, layers + 1):
        z = round(layer * LAYER, 3)
        w.lines += [";LAYER_CHANGE", f";Z:{z}", f";HEIGHT:{LAYER}", f"G1 Z{z:.3f} F7800", f";WIDTH:{WIDTH}"]
        radius = radius_at(layer, layers)
        if layer == 1:
            w.loop(radius + 5)
        for k in range(3):
            w.loop(radius - k * WIDTH)
        solid = layer <= 3 or layer > layers - 4
        infill(w, radius, layer, WIDTH if solid else 4.0)
    w.lines += ["G1 Z60 F600", "M84"]
    return "\n".join(w.lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=200)
    args = parser.parse_args()
    args.out.write_text(generate(args.layers))
    print(f"wrote {args.out} ({args.layers} layers)")


if __name__ == "__main__":
    main()
