"""Draws the part printed so far: each extrusion as a lit wall and top, layer over layer.

Why painter's order by layer is enough: the camera is above the part, so along any ray a
farther point is lower; a higher layer can never be hidden behind a lower one. Inside a
layer, walls go first and tops over them (a top can only cover walls behind it). That
makes the part cacheable: with the pose unchanged, layer N+1 is drawn over the image of
layers 1..N, so a print followed layer by layer costs one layer per frame.

Each extrusion is a box ``width`` wide and ``height`` tall: the wall facing the camera is
shaded by Lambert's law for its normal (quantised, so one fillPoly per shade level), a
dark line at its foot makes the layer lines, and a brighter ridge on its top gives top
surfaces their line texture.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from printmesh_camera.sources.base import Image
from printmesh_camera.sources.scene import SHIFT, Projector
from printmesh_camera.sources.toolpath import Toolpath

LEVELS = 8  # quantised shade levels
OCCUPANCY = 0.1  # mm per cell of the occlusion grids
EDGE_ON = 0.087  # sin(5 degrees)
ALONG = np.linspace(0, 1, 11)  # where along a segment its cover by the next layer is checked
AMBIENT = 0.42


class Geometry:
    """Per-segment arrays of the whole file, computed once per file (in the loader thread)."""

    def __init__(self, toolpath: Toolpath) -> None:
        layers = toolpath.layers
        self.count = len(layers)
        sizes = [len(layer.segments) for layer in layers]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        seg = np.concatenate([x.segments for x in layers]) if layers else np.zeros((0, 5), np.float32)
        self.layer = np.repeat(np.arange(1, self.count + 1), sizes).astype(np.int32)
        self.z = np.repeat([x.z for x in layers], sizes).astype(np.float32)
        self.h = np.repeat([x.height for x in layers], sizes).astype(np.float32)
        p0, p1 = seg[:, 0:2], seg[:, 2:4]
        length = np.maximum(np.linalg.norm(p1 - p0, axis=1, keepdims=True), 1e-6)
        direction = (p1 - p0) / length
        self.half = seg[:, 4:5] / 2
        self.p0 = p0 - direction * self.half
        self.p1 = p1 + direction * self.half
        self.normal = np.column_stack([direction[:, 1], -direction[:, 0]]).astype(np.float32)
        self.centre = (
            ((seg[:, 0].min() + seg[:, 0].max()) / 2, (seg[:, 1].min() + seg[:, 1].max()) / 2) if layers else (0, 0)
        )
        # layer 2's outline: layer 1 often carries a skirt or brim that casts no shadow
        first = layers[min(1, len(layers) - 1)].segments if layers else np.zeros((0, 5), np.float32)
        pts = np.concatenate([first[:, 0:2], first[:, 2:4]]) if len(first) else np.zeros((0, 2), np.float32)
        self.footprint: Image | None = cv2.convexHull(pts.astype(np.float32))[:, 0, :] if len(pts) >= 3 else None
        self.wall_hidden, self.top_hidden = self._occlusion(seg)

    def _occlusion(self, seg: Image) -> tuple[Image, Image]:
        """Which walls (per side: +normal, -normal) touch a neighbour in their own layer, and which tops
        the next layer covers: those are never seen from above, and skipping them halves a cold frame."""
        count = len(seg)
        walls, tops = np.zeros((count, 2), bool), np.zeros(count, bool)
        if count == 0:
            return walls, tops
        lo = seg[:, 0:4].reshape(-1, 2).min(axis=0) - 2
        hi = seg[:, 0:4].reshape(-1, 2).max(axis=0) + 2
        cols, rows = (np.ceil((hi - lo) / OCCUPANCY)).astype(int) + 1
        mid = (seg[:, 0:2] + seg[:, 2:4]) / 2
        reach = self.normal * seg[:, 4:5]

        def cells(points: Image) -> tuple[Image, Image]:
            ij = np.clip(((points - lo) / OCCUPANCY).round().astype(np.int64), 0, [cols - 1, rows - 1])
            return ij[:, 1], ij[:, 0]

        previous: Image | None = None
        for i in range(self.count, 0, -1):  # top down: layer i's grid is "the next layer" of layer i - 1
            a, b = int(self.starts[i - 1]), int(self.starts[i])
            grid = np.zeros((rows, cols), np.uint8)
            lines = np.round((seg[a:b, 0:4].reshape(-1, 2, 2) - lo) / OCCUPANCY * (1 << SHIFT)).astype(np.int32)
            thick = max(1, round(float(np.median(seg[a:b, 4])) / OCCUPANCY))
            cv2.polylines(grid, list(lines), False, 255, thick, cv2.LINE_8, SHIFT)
            walls[a:b, 0] = grid[cells(mid[a:b] + reach[a:b])] > 0
            walls[a:b, 1] = grid[cells(mid[a:b] - reach[a:b])] > 0
            if previous is not None:
                # hidden only if covered all along: a line crossed by one infill line above stays
                p0, p1 = seg[a:b, 0:2], seg[a:b, 2:4]
                tops[a:b] = np.all([previous[cells(p0 + (p1 - p0) * t)] > 0 for t in ALONG], axis=0)
            previous = grid
        return walls, tops

    def end(self, layers: int) -> int:
        """Index one past the last segment of layer ``layers``."""
        return int(self.starts[max(0, min(layers, self.count))])


@dataclass(frozen=True)
class Placement:
    """Where each layer really is: rotation (radians, about ``pivot``) and offset per layer, mm."""

    angle: Image  # float32 (layers + 1,), index = layer number
    offset: Image  # float32 (layers + 1, 2)
    pivot: tuple[float, float]
    hidden_above: int | None  # layers above this are not drawn (spaghetti took over)

    @staticmethod
    def none(count: int) -> Placement:
        return Placement(np.zeros(count + 1, np.float32), np.zeros((count + 1, 2), np.float32), (0.0, 0.0), None)

    def key(self) -> tuple[bytes, bytes, int | None]:
        return (self.angle.tobytes(), self.offset.tobytes(), self.hidden_above)


def shade_table(colour_bgr: Image) -> Image:
    """BGR per shade level (0 = unlit, LEVELS - 1 = fully lit)."""
    lit = AMBIENT + (1 - AMBIENT) * np.linspace(0, 1, LEVELS, dtype=np.float32)
    table: Image = np.clip(colour_bgr[None, :] * lit[:, None], 0, 255)
    return table


def pick(fixed: Image, rows: Image, corners: list[int]) -> list[Image]:
    """Polygons for cv2 (C-contiguous int32 arrays): ``corners`` of each segment in ``rows``."""
    return list(np.ascontiguousarray(fixed[rows][:, corners]))


def draw_layers(image: Image, geo: Geometry, projector: Projector, light: Image, colour_bgr: Image,
                first: int, last: int, place: Placement) -> None:  # fmt: skip
    """Draw layers ``first..last`` (1-based, inclusive) over ``image``, in painter's order."""
    if place.hidden_above is not None:
        last = min(last, place.hidden_above)
    a, b = geo.end(first - 1), geo.end(last)
    if b <= a:
        return
    layer = geo.layer[a:b]
    p0, p1, normal, half = geo.p0[a:b], geo.p1[a:b], geo.normal[a:b], geo.half[a:b]
    angle, offset = place.angle[layer], place.offset[layer]
    if np.any(angle) or np.any(offset):
        cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
        pivot = np.array(place.pivot, np.float32)

        def move(p: Image) -> Image:
            q = p - pivot
            return np.column_stack([q[:, 0:1] * cos - q[:, 1:2] * sin, q[:, 0:1] * sin + q[:, 1:2] * cos]) + pivot

        p0, p1 = move(p0) + offset, move(p1) + offset
        nx, ny = normal[:, 0:1], normal[:, 1:2]
        normal = np.column_stack([nx * cos - ny * sin, nx * sin + ny * cos])
    eye = projector.eye[:2].astype(np.float32)
    towards = eye - (p0 + p1) / 2
    along = np.einsum("ij,ij->i", normal, towards)
    facing = np.where(along < 0, -1.0, 1.0).astype(np.float32)[:, None]
    side = normal * facing
    # a wall against a neighbour, a top under the next layer (when drawn, not shifted off it): unseen;
    # a wall seen edge-on (under 5 degrees) is a sliver its seam and top already cover
    height = float(projector.eye[2]) - geo.z[a:b]
    grazing = np.abs(along) < EDGE_ON * np.sqrt(np.einsum("ij,ij->i", towards, towards) + height * height)
    wall_seen = ~(np.where(facing[:, 0] > 0, geo.wall_hidden[a:b, 0], geo.wall_hidden[a:b, 1]) | grazing)
    above = np.minimum(layer + 1, geo.count)
    same_place = (place.angle[above] == place.angle[layer]) & (place.offset[above] == place.offset[layer]).all(axis=1)
    top_seen = ~(geo.top_hidden[a:b] & (layer < last) & same_place)
    sel = np.flatnonzero(wall_seen | top_seen)  # project only what can show
    layer, p0, p1, side, half = layer[sel], p0[sel], p1[sel], side[sel], half[sel]
    wall_seen, top_seen = wall_seen[sel], top_seen[sel]
    z = geo.z[a:b][sel][:, None]
    top, bottom = z, z - geo.h[a:b][sel][:, None]
    out0, out1, in0, in1 = p0 + side * half, p1 + side * half, p0 - side * half, p1 - side * half
    corners = np.stack([
        np.hstack([out0, top]), np.hstack([out1, top]), np.hstack([out1, bottom]), np.hstack([out0, bottom]),
        np.hstack([in1, top]), np.hstack([in0, top]),
        np.hstack([p0, top]), np.hstack([p1, top]),
    ], axis=1).astype(np.float32)  # fmt: skip
    pixels, depth = projector.project(corners)
    fixed = np.round(pixels * (1 << SHIFT)).astype(np.int32)
    ok: Image = np.asarray((depth > 2).all(axis=1))
    lambert = np.clip(side @ light[:2], 0, 1)
    level = np.minimum((lambert * (LEVELS - 1) + 0.5).astype(np.int32), LEVELS - 1)
    table = shade_table(colour_bgr).tolist()
    top_colour = (np.clip(colour_bgr * (AMBIENT + (1 - AMBIENT) * max(0.0, float(light[2]))), 0, 255)).tolist()
    ridge_colour = np.clip(colour_bgr * 1.25 + 18, 0, 255).tolist()
    seam_colour = (colour_bgr * 0.35).tolist()
    # walls sorted by (layer, shade level): one fillPoly per level per layer
    shown = np.flatnonzero(ok & wall_seen)
    key = layer[shown] * LEVELS + level[shown]
    order = shown[np.argsort(key, kind="stable")]
    keys, cuts = np.unique(key[np.argsort(key, kind="stable")], return_index=True)
    cuts = np.append(cuts, len(order))
    wall_layer = keys // LEVELS
    walls, seams = pick(fixed, order, [0, 1, 2, 3]), pick(fixed, order, [3, 2])
    covered = np.flatnonzero(ok & top_seen)
    tops, ridges = pick(fixed, covered, [0, 1, 4, 5]), pick(fixed, covered, [6, 7])
    top_cuts = np.searchsorted(layer[covered], np.arange(first, last + 2))
    wall_cuts = np.searchsorted(wall_layer, np.arange(first, last + 2))
    for i in range(last - first + 1):
        g0, g1 = int(wall_cuts[i]), int(wall_cuts[i + 1])
        for g in range(g0, g1):
            cv2.fillPoly(image, walls[cuts[g] : cuts[g + 1]], table[keys[g] % LEVELS], cv2.LINE_8, SHIFT)
        if g1 > g0:
            cv2.polylines(image, seams[cuts[g0] : cuts[g1]], False, seam_colour, 1, cv2.LINE_8, SHIFT)
        t0, t1 = int(top_cuts[i]), int(top_cuts[i + 1])
        if t1 > t0:
            cv2.fillPoly(image, tops[t0:t1], top_colour, cv2.LINE_8, SHIFT)
            cv2.polylines(image, ridges[t0:t1], False, ridge_colour, 1, cv2.LINE_8, SHIFT)


class PartCache:
    """The last image drawn, its key (pose, placement) and how many layers it holds."""

    def __init__(self) -> None:
        self.key: object = None
        self.layers = 0
        self.image: Image | None = None

    def render(self, key: object, layers: int, base: Image, draw: object) -> Image:
        """Image of layers 1..``layers``: reuses the cache when the key matches and it holds no more."""
        assert callable(draw)
        if self.key != key or self.image is None or self.layers > layers:
            self.image, self.layers, self.key = base.copy(), 0, key
        if layers > self.layers:
            draw(self.image, self.layers + 1, layers)
            self.layers = layers
        return self.image
