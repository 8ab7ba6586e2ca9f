"""Each layer's outline in the bed's XY, from the G-code: where the print watch expects material.

A layer shift moves the layers above it; from the head camera those layers stick out of the
outline the G-code gives them, by millimetres, while growth never does. So the coordinator
projects every printed layer's outline into each capture (``coordinator/.../watch``) and
part-coloured pixels outside it are unexplained. The outline must therefore never be too
small (a false alarm), and should not be much too big (a shift hidden inside it):

* a **stroke** is a run of extruding moves with no travel between them; each stroke's convex
  hull is kept, and a hull inside another one is dropped. A part is then its outer
  perimeter's hull. A concave part (an L's inner corner) is over-covered: material there is
  accepted as expected, so a shift into the corner is not seen; a false alarm cannot come of it;
* a closed stroke that encircles the rest of its layer **with a gap** (a skirt, a draft
  shield) is a **ring**: its path is kept, not its hull, which would cover the bed between it
  and the part, where a shifted layer shows first;
* extrusion before layer 1 (a start G-code purge line) belongs to layer 1: it is on the bed.

Arcs (G2/G3) count by their end points: a bulge between them is inside the margin the
watch adds only for arcs under a few millimetres. Pure Python, no OctoPrint: it runs at
upload, beside the layer scan, on the thread that adds the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import BinaryIO

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour
from octoprint_printmesh.gcode.motion import EXTRUDES, Motion
from printmesh_core.models.layers import LayerOutline, LayerTable

Point = tuple[float, float]
GAP = 1.0  # mm between a closed stroke and what it encloses for it to be a ring
CLOSED = 1.0  # mm between a stroke's ends for it to be closed
SIMPLIFY = 0.05  # mm: a ring's path is simplified within this


def hull(points: Iterable[Point]) -> list[Point]:
    """Convex hull, counter-clockwise, no repeated point (Andrew's monotone chain)."""
    pts = sorted(set(points))
    if len(pts) <= 2:
        return pts

    def half(seq: list[Point]) -> list[Point]:
        out: list[Point] = []
        for p in seq:
            while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return lower[:-1] + upper[:-1]


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def area(poly: list[Point]) -> float:
    return abs(sum(_cross((0.0, 0.0), poly[i - 1], poly[i]) for i in range(len(poly)))) / 2


def inside(poly: list[Point], p: Point) -> bool:
    """``p`` in the convex counter-clockwise ``poly`` (its border included): a binary search over the
    fan of triangles from its first vertex, so a 48-sided perimeter costs six tests, not 48."""
    n = len(poly)
    if n < 3:
        return False
    v0 = poly[0]
    eps = -1e-9
    if _cross(v0, poly[1], p) < eps or _cross(v0, poly[-1], p) > -eps:
        return _cross(v0, poly[1], p) >= eps and _cross(v0, poly[-1], p) <= -eps and _on_edges(poly, p)
    lo, hi = 1, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _cross(v0, poly[mid], p) >= 0:
            lo = mid
        else:
            hi = mid
    return _cross(poly[lo], poly[hi], p) >= eps


def _on_edges(poly: list[Point], p: Point) -> bool:
    """On the border by the first or last edge (the fan's outer rays): the plain test decides."""
    return all(_cross(poly[i - 1], poly[i], p) >= -1e-9 for i in range(len(poly)))


def _distance(p: Point, a: Point, b: Point) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length = dx * dx + dy * dy
    t = 0.0 if length == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length))
    return math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy)


def _apart(path: list[Point], poly: list[Point]) -> bool:
    """Every point of ``path`` at least ``GAP`` outside the convex ``poly``."""
    for p in path:
        if inside(poly, p):
            return False
        if len(poly) == 1:
            if math.hypot(p[0] - poly[0][0], p[1] - poly[0][1]) < GAP:
                return False
        elif min(_distance(p, poly[i - 1], poly[i]) for i in range(len(poly))) < GAP:
            return False
    return True


def simplify(path: list[Point], tolerance: float = SIMPLIFY) -> list[Point]:
    """Douglas-Peucker, iterative: the path within ``tolerance`` mm with fewer points."""
    if len(path) < 3:
        return list(path)
    keep = [False] * len(path)
    keep[0] = keep[-1] = True
    stack = [(0, len(path) - 1)]
    while stack:
        first, last = stack.pop()
        best, index = 0.0, -1
        for i in range(first + 1, last):
            d = _distance(path[i], path[first], path[last])
            if d > best:
                best, index = d, i
        if index >= 0 and best > tolerance:
            keep[index] = True
            stack += [(first, index), (index, last)]
    return [p for p, k in zip(path, keep, strict=True) if k]


def layer_outline(layer: int, z: float, height: float | None, strokes: list[list[Point]]) -> LayerOutline:
    """One layer's hulls and rings from its strokes (each a list of points along the extrusion).

    Largest hull first: a stroke inside a hull already kept is dropped (inner walls, infill),
    so only a part's outermost closed stroke is ever tested for being a ring."""
    hulls = [hull(s) for s in strokes]
    boxes = [_box(h) for h in hulls]
    order = sorted(range(len(strokes)), key=lambda k: -area(hulls[k]) if len(hulls[k]) >= 3 else 0.0)
    kept: list[int] = []
    rings: list[int] = []
    for i in order:
        if any(_contains(hulls[k], boxes[k], hulls[i], boxes[i]) for k in kept):
            continue
        if _ring(i, strokes, hulls, boxes):
            rings.append(i)
        else:
            kept.append(i)
    return LayerOutline(
        layer=layer,
        z=z,
        height=height,
        hulls=[[(round(x, 3), round(y, 3)) for x, y in hulls[i]] for i in kept],
        rings=[[(round(x, 3), round(y, 3)) for x, y in simplify(strokes[i])] for i in sorted(rings)],
    )


Box = tuple[float, float, float, float]


def _box(points: list[Point]) -> Box:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys)) if points else (0.0, 0.0, -1.0, -1.0)


def _in_box(box: Box, p: Point) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def _contains(outer: list[Point], outer_box: Box, inner: list[Point], inner_box: Box) -> bool:
    if len(outer) < 3 or not (_in_box(outer_box, inner_box[:2]) and _in_box(outer_box, inner_box[2:])):
        return False
    return all(inside(outer, p) for p in inner)


def _ring(i: int, strokes: list[list[Point]], hulls: list[list[Point]], boxes: list[Box]) -> bool:
    """A closed stroke that encircles other extrusion of its layer with a gap of ``GAP`` all round."""
    stroke, own = strokes[i], hulls[i]
    if len(stroke) < 4 or len(own) < 3 or math.dist(stroke[0], stroke[-1]) > CLOSED:
        return False
    box = boxes[i]
    enclosed = [
        p for j, s in enumerate(strokes) if j != i and _in_box(box, s[0]) and inside(own, s[0]) for p in hulls[j]
    ]
    return bool(enclosed) and _apart(stroke, hull(enclosed))


class OutlineBuilder:
    """Feed a file's lines in order (``start`` at each layer's first line); ``finish`` gives the outlines."""

    def __init__(self, flavour: Flavour = DEFAULT_FLAVOUR) -> None:
        self.motion = Motion(flavour)
        self.outlines: list[LayerOutline] = []
        self._strokes: list[list[Point]] = []
        self._stroke: list[Point] | None = None
        self._layer: tuple[int, float, float | None] | None = None

    def start(self, layer: int, z: float, height: float | None) -> None:
        self._close_layer()
        self._layer = (layer, z, height)

    def line(self, text: str) -> None:
        """One line, comments allowed."""
        if ";" in text:
            text = text[: text.index(";")]
        text = text.strip()
        if not text or text[0] not in "GgNn":
            if text[:1] in ("M", "m"):
                self.motion.feed(text)
            return
        motion = self.motion
        before = (motion.x, motion.y)
        flags = motion.feed(text)
        after = (motion.x, motion.y)
        if flags & EXTRUDES and None not in before and None not in after:
            if self._stroke is None:
                self._stroke = [before]  # type: ignore[list-item]
                self._strokes.append(self._stroke)
            self._stroke.append(after)  # type: ignore[arg-type]
        elif after != before:
            self._stroke = None  # a travel ends the stroke

    def finish(self) -> list[LayerOutline]:
        self._close_layer()
        return self.outlines

    def _close_layer(self) -> None:
        self._stroke = None
        if self._layer is None:
            return  # before layer 1: the strokes (a purge) stay for layer 1
        layer, z, height = self._layer
        self.outlines.append(layer_outline(layer, z, height, self._strokes))
        self._strokes = []
        self._layer = None


def scan_outlines(source: BinaryIO, table: LayerTable, flavour: Flavour = DEFAULT_FLAVOUR) -> list[LayerOutline]:
    """The outline of every layer of ``table``, read from ``source`` (the file it was scanned from)."""
    builder = OutlineBuilder(flavour)
    starts = [(row.offset, row.layer, row.z, row.height) for row in table.layers]
    at, pos = 0, 0
    for raw in source:
        for line in raw.splitlines(keepends=True) if b"\r" in raw else (raw,):
            while at < len(starts) and starts[at][0] <= pos:
                builder.start(*starts[at][1:])
                at += 1
            pos += len(line)
            builder.line(line.decode("latin-1"))
    while at < len(starts):  # layers with no line (a table from another version of the file)
        builder.start(*starts[at][1:])
        at += 1
    return builder.finish()
