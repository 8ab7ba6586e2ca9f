"""The part where the G-code puts it: each capture's expected silhouette, and what sticks out of it.

The comparison with the last capture (``compare.py``) must accept change wherever the part
grows, and a layer that slid a few millimetres changes the image right where the part grows:
on the development set it missed one shift in five at its first capture. The G-code says
where every printed layer is; with the head's position and the camera's geometry (its
offset from the nozzle, its pitch, its field of view) each layer's outline projects into the
image, and the union of them is where part may be. Part-coloured pixels outside it (beyond a
tolerance for the camera's jitter) are material where the G-code put none: a shifted layer,
a strand, a part off its place.

Only pixels **new** since the last capture of the same grid point count, so what was outside
from the start (a clip, a purge blob, a nozzle in view, an outline the G-code got wrong)
never flags, and a problem is reported once, at the layer it appears (like ``compare.py``).

The projection is the virtual camera's pinhole model (``printmesh_camera.sources.scene``);
``tests/unit/test_watch_silhouette.py`` holds the two to the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from printmesh_coordinator.watch_scene import CameraModel, ImageKey, Outline, Scene

__all__ = [
    "CameraModel", "ImageKey", "Rings", "Scene", "cleaned", "clear_rings", "expected", "fitted", "flags", "iou",
    "moved", "new_outside", "outside", "overlap", "projected",
]  # fmt: skip

Point = tuple[float, float]
Vec3 = tuple[float, float, float]

MARGIN = 0.3  # mm beyond an outline's centre line: half an extrusion width and a little more
RING = 0.6  # mm: a ring's width, as drawn
NEAR = 2.0  # mm: a vertex closer to the camera plane makes its polygon unprojectable (skipped)
TOLERANCE = 2  # pixels (small image) around the expected silhouette: jitter and rounding
SEARCH = 1  # pixels (small image) the silhouette is moved each way to fit the camera's jitter
ANCHOR = 2  # pixels (small image) the rings are moved each way to place the silhouette
ANCHOR_GAIN = 1.25  # the rings' best move must lay them on this share more part pixels than none
ANCHOR_MIN = 15  # pixels of ring clear of the part below which the rings place nothing
ANCHOR_HITS = 8  # part pixels the rings' best move must lie on to place the silhouette
TOLERANCE_PLACED = 1  # the tolerance once the rings placed the silhouette
ONE = 30  # new outside pixels (small image) in one image that flag
SEVERAL = (12, 2)  # ...or this many in at least that many images
FIXED = 4  # fixed-point bits for cv2 drawing
_CLEAR = np.ones((7, 7), np.uint8)  # a ring within 3 pixels of the part's projection does not place it


class Pinhole:
    """World (mm) to pixels for a head camera at ``head``: the virtual camera's model."""

    def __init__(self, camera: CameraModel, head: Vec3, size: tuple[int, int]) -> None:
        ox, oy, oz = camera.offset
        self.eye = np.array([head[0] + ox, head[1] + oy, head[2] + oz], np.float64)
        norm = math.hypot(ox, oy)
        dx, dy = (-ox / norm, -oy / norm) if norm else (0.0, 1.0)
        p = math.radians(camera.pitch)
        forward = np.array([dx * math.cos(p), dy * math.cos(p), -math.sin(p)])
        forward /= np.linalg.norm(forward)
        up = np.array([0.0, 0.0, 1.0]) if abs(float(forward[2])) <= 0.999 else np.array([0.0, 1.0, 0.0])
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        self.rotation = np.stack([right, np.cross(right, forward), forward])
        self.focal = (size[0] / 2) / math.tan(math.radians(camera.fov) / 2)
        self.centre = (size[0] / 2, size[1] / 2)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pixels (n, 2), depth (n,)) of points (n, 3)."""
        cam = (points - self.eye) @ self.rotation.T
        depth = cam[:, 2]
        safe = np.maximum(depth, 1.0)
        px = self.centre[0] + self.focal * cam[:, 0] / safe
        py = self.centre[1] - self.focal * cam[:, 1] / safe
        return np.stack([px, py], axis=1), depth


def grown(hull: Sequence[Point], margin: float = MARGIN) -> np.ndarray:
    """A convex counter-clockwise polygon pushed out by ``margin`` mm (each vertex along its bisector)."""
    poly = np.asarray(hull, np.float64)
    if len(poly) < 3:
        centre = poly.mean(axis=0) if len(poly) else np.zeros(2)
        return np.array([centre + margin * np.array([math.cos(a), math.sin(a)]) for a in np.linspace(0, 6.28, 8)])
    edges = np.roll(poly, -1, axis=0) - poly
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)  # outward for counter-clockwise
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    before = np.roll(normals, 1, axis=0)
    bisector = before + normals
    scale = margin / np.maximum(1.0 + np.einsum("ij,ij->i", before, normals), 0.2)
    out: np.ndarray = poly + bisector * scale[:, None]
    return out


def _merged(outlines: Sequence[Outline]) -> list[tuple[float, float, Outline]]:
    """(bottom, top, outline) with runs of layers of the same shape made one prism."""
    out: list[tuple[float, float, Outline]] = []
    for o in outlines:
        bottom = o.z - o.height
        if out and out[-1][2].hulls == o.hulls and out[-1][2].rings == o.rings and abs(out[-1][1] - bottom) < 1e-3:
            out[-1] = (out[-1][0], o.z, out[-1][2])
        else:
            out.append((bottom, o.z, o))
    return out


def expected(scene: Scene, key: ImageKey, full: tuple[int, int], small: tuple[int, int]) -> np.ndarray | None:
    """uint8 mask (``small`` (width, height)) where the printed part may show in image ``key``; None if unknown.

    A layer wholly behind the camera is out of view; one that crosses the camera's plane cannot be
    projected as a polygon, and leaving it out would make its visible part "outside": then the
    image gets no silhouette (None) rather than a false alarm."""
    drawn = projected(scene, key, full, small)
    return None if drawn is None else cv2.bitwise_or(*drawn)


@dataclass(frozen=True)
class Rings:
    """The rings (skirts, draft shields) where they show clear of the part: what places the silhouette.

    A ring lies on the bed, so a shifted layer or a strand never moves it; only the camera's jitter does.
    ``away``: where the part's projection is not (by 3 pixels): the rings are laid on part pixels there
    only. Near a wall a moved ring would find the wall's own pixels: a skirt close to a tower, seen at
    a grazing angle, is thinner than the opening that cleans the part mask, so the rings found nothing
    at their place and 53 wall pixels two rows up (dev 1114 layer 40, eval 9602 and 9653, 169-173
    pixels "outside" then)."""

    mask: np.ndarray
    away: np.ndarray


def clear_rings(body: np.ndarray, rings: np.ndarray) -> Rings | None:
    away = cv2.bitwise_not(cv2.dilate(body, _CLEAR))
    clear: np.ndarray = cv2.bitwise_and(rings, away)
    return Rings(clear, away) if cv2.countNonZero(clear) >= ANCHOR_MIN else None


def projected(
    scene: Scene, key: ImageKey, full: tuple[int, int], small: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(the layers' hulls, their rings) drawn as uint8 masks of ``small`` size; None as in ``expected``."""
    camera, head = scene.cameras.get(key[0]), scene.heads.get(key)
    if camera is None or head is None or not scene.outlines:
        return None
    pin = Pinhole(camera, head, full)
    scale = small[0] / full[0] * (1 << FIXED)
    body, rings = np.zeros((small[1], small[0]), np.uint8), np.zeros((small[1], small[0]), np.uint8)
    for bottom, top, outline in _merged(scene.outlines):
        for hull in outline.hulls:
            ring = grown(hull)
            points = np.concatenate([np.column_stack([ring, np.full(len(ring), z)]) for z in (top, bottom)])
            pixels, depth = pin.project(points)
            if (depth < NEAR).all():
                continue
            if (depth < NEAR).any():
                return None
            cv2.fillConvexPoly(body, cv2.convexHull(np.round(pixels * scale).astype(np.int32)), 255, cv2.LINE_8, FIXED)
        for path in outline.rings:
            if not _ring(rings, pin, np.asarray(path, np.float64), bottom, top, scale):
                return None
    return body, rings


def _ring(mask: np.ndarray, pin: Pinhole, path: np.ndarray, bottom: float, top: float, scale: float) -> bool:
    """A ring's wall: each segment's quad (top and bottom edges), drawn ``RING`` mm thick. False if it
    crosses the camera's plane (see ``expected``)."""
    if len(path) < 2:
        return True
    n = len(path)
    pixels, depth = pin.project(np.concatenate([np.column_stack([path, np.full(n, z)]) for z in (top, bottom)]))
    if (depth < NEAR).all():
        return True
    if (depth < NEAR).any():
        return False
    fixed = np.round(pixels * scale).astype(np.int32)
    width = max(1, round(pin.focal * RING / float(depth.mean()) * scale / (1 << FIXED)))
    for i in range(n - 1):
        quad = fixed[[i, i + 1, n + i + 1, n + i]]
        cv2.fillConvexPoly(mask, cv2.convexHull(quad), 255, cv2.LINE_8, FIXED)
    cv2.polylines(mask, [fixed[:n], fixed[n:]], False, 255, width, cv2.LINE_8, FIXED)
    return True


_OPEN = np.ones((2, 2), np.uint8)


def cleaned(part: np.ndarray) -> np.ndarray:
    """The part mask as the silhouette's measures take it: specks of one pixel opened away."""
    out: np.ndarray = cv2.morphologyEx(part, cv2.MORPH_OPEN, _OPEN)
    return out


def moved(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    if not dx and not dy:
        return mask
    size, move = (mask.shape[1], mask.shape[0]), np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(mask, move, size, borderMode=cv2.BORDER_REPLICATE)  # it goes on past the image's edge


def placed(part: np.ndarray, rings: Rings | None) -> tuple[int, int]:
    """Where the camera's jitter put the silhouette: the move (up to ``ANCHOR`` pixels) that lays the
    rings on the most part pixels away from the part's projection, if it lays them on clearly more
    than none does, and on at least ``ANCHOR_HITS``; else (0, 0)."""
    if rings is None:
        return 0, 0
    part = cv2.bitwise_and(part, rings.away)
    still = cv2.countNonZero(cv2.bitwise_and(part, rings.mask))
    best, at = still, (0, 0)
    for dy in range(-ANCHOR, ANCHOR + 1):
        for dx in range(-ANCHOR, ANCHOR + 1):
            if not dx and not dy:
                continue  # ``still``
            hits = cv2.countNonZero(cv2.bitwise_and(part, moved(rings.mask, dx, dy)))
            if hits > best or (hits == best and abs(dx) + abs(dy) < abs(at[0]) + abs(at[1])):
                best, at = hits, (dx, dy)
    return at if best >= max(ANCHOR_GAIN * still, ANCHOR_HITS) else (0, 0)


def tolerance_of(rings: Rings | None) -> int:
    return TOLERANCE if rings is None else TOLERANCE_PLACED


def outside(part: np.ndarray, silhouette: np.ndarray, rings: Rings | None = None) -> np.ndarray:
    """Part pixels beyond the tolerance (``tolerance_of``) of the silhouette, placed by its ``rings``
    (``clear_rings``) and moved by up to ``SEARCH`` pixels around that to where the fewest are left (the
    camera's jitter; more room would let a small shift pull the silhouette onto itself: ``bench/RESULTS.md``)."""
    return fitted(part, silhouette, rings)[0]


def fitted(part: np.ndarray, silhouette: np.ndarray, rings: Rings | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """(``outside``'s pixels, the move it gave the silhouette)."""
    tolerance = tolerance_of(rings)
    reach = cv2.dilate(silhouette, np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8))
    part = cleaned(part)
    cx, cy = placed(part, rings)
    best: tuple[int, np.ndarray, tuple[int, int]] | None = None
    for dy in range(cy - SEARCH, cy + SEARCH + 1):
        for dx in range(cx - SEARCH, cx + SEARCH + 1):
            out = cv2.bitwise_and(part, cv2.bitwise_not(moved(reach, dx, dy)))
            count = cv2.countNonZero(out)
            if best is None or count < best[0]:
                best = (count, out, (dx, dy))
    assert best is not None
    return best[1], best[2]


def overlap(part: np.ndarray, silhouette: np.ndarray) -> float:
    """``iou`` of the part mask, ``cleaned`` as ``outside`` takes it, and the silhouette."""
    return iou(cleaned(part), silhouette)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (0 when both are empty). ``cleaned`` is not idempotent (its
    even kernel moves a mask by a pixel), so a mask already cleaned comes here directly."""
    either = cv2.countNonZero(cv2.bitwise_or(a, b))
    return cv2.countNonZero(cv2.bitwise_and(a, b)) / either if either else 0.0


def new_outside(now: np.ndarray, before: np.ndarray | None, tolerance: int = TOLERANCE) -> np.ndarray:
    """Outside pixels that were not outside (within ``tolerance``) at the last capture."""
    if before is None:
        return now
    seen = cv2.dilate(before, np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8))
    out: np.ndarray = cv2.bitwise_and(now, cv2.bitwise_not(seen))
    return out


def flags(counts: Mapping[ImageKey, int]) -> list[ImageKey]:
    """The images that make a layer a problem: one with ``ONE`` new outside pixels, or several with ``SEVERAL``."""
    one = [k for k, n in counts.items() if n >= ONE]
    if one:
        return sorted(one, key=lambda k: -counts[k])
    several = [k for k, n in counts.items() if n >= SEVERAL[0]]
    return sorted(several, key=lambda k: -counts[k]) if len(several) >= SEVERAL[1] else []
