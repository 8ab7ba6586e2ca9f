"""A pinhole camera in printer coordinates, and the scene behind the part (backdrop, bed).

Printer coordinates are millimetres with Z up, as the G-code has them. The camera is
always above what it films (a frame camera looks down at the bed, a carriage camera sits
above the nozzle), which is what lets the part be drawn layer by layer in painter's order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from printmesh_camera.sources.base import Image

NEAR = 1.0  # mm: points closer to the camera plane than this are not drawn
SHIFT = 4  # fixed-point bits for cv2 drawing (sub-pixel accuracy)
BED_BGR = np.array([46, 44, 40], np.float32)
GRID_STEP = 10.0  # mm between bed grid lines


@dataclass(frozen=True)
class Pose:
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    fov: float  # horizontal, degrees
    width: int
    height: int


Vec3 = tuple[float, float, float]


def head_pose(head: Vec3, offset: Vec3, pitch: float, fov: float, size: tuple[int, int]) -> Pose:
    """A carriage camera: ``offset`` from the nozzle, looking towards it horizontally, ``pitch`` down."""
    eye = (head[0] + offset[0], head[1] + offset[1], head[2] + offset[2])
    dx, dy = -offset[0], -offset[1]
    norm = math.hypot(dx, dy) or 1.0
    dx, dy = (dx / norm, dy / norm) if (dx or dy) else (0.0, 1.0)
    p = math.radians(pitch)
    forward = (dx * math.cos(p), dy * math.cos(p), -math.sin(p))
    target = (eye[0] + forward[0] * 100, eye[1] + forward[1] * 100, eye[2] + forward[2] * 100)
    return Pose(eye, target, fov, size[0], size[1])


class Projector:
    """World (mm) to pixel coordinates for one pose."""

    def __init__(self, pose: Pose) -> None:
        self.pose = pose
        self.eye = np.array(pose.eye, np.float64)
        forward = np.array(pose.target, np.float64) - self.eye
        forward /= np.linalg.norm(forward)
        up = np.array([0.0, 0.0, 1.0])
        if abs(float(forward @ up)) > 0.999:  # looking straight down: screen up is +Y
            up = np.array([0.0, 1.0, 0.0])
        right = np.cross(forward, up)
        right /= np.linalg.norm(right)
        self.rotation = np.stack([right, np.cross(right, forward), forward]).astype(np.float32)
        self.focal = (pose.width / 2) / math.tan(math.radians(pose.fov) / 2)
        self.centre = (pose.width / 2, pose.height / 2)

    def project(self, points: Image) -> tuple[Image, Image]:
        """(pixels float32 (..., 2), depth (...)) of points (..., 3)."""
        cam = (points - self.eye.astype(np.float32)) @ self.rotation.T
        depth = cam[..., 2]
        safe = np.maximum(depth, NEAR)
        px = self.centre[0] + self.focal * cam[..., 0] / safe
        py = self.centre[1] - self.focal * cam[..., 1] / safe
        return np.stack([px, py], axis=-1), depth

    def fixed(self, points: Image) -> Image:
        """Projected points in cv2's fixed point (``SHIFT`` bits), int32."""
        pixels, _ = self.project(points)
        return np.round(pixels * (1 << SHIFT)).astype(np.int32)


def clip_near(polygon: Image, projector: Projector) -> Image | None:
    """The part of a 3D polygon in front of the near plane (Sutherland-Hodgman, one plane)."""
    _, depth = projector.project(polygon.astype(np.float32))
    out = []
    count = len(polygon)
    for i in range(count):
        a, b = polygon[i], polygon[(i + 1) % count]
        da, db = depth[i] - NEAR * 2, depth[(i + 1) % count] - NEAR * 2
        if da >= 0:
            out.append(a)
        if (da >= 0) != (db >= 0):
            out.append(a + (b - a) * (da / (da - db)))
    return np.array(out, np.float32) if len(out) >= 3 else None


@functools.lru_cache(maxsize=4)
def _enclosure(width: int, height: int) -> Image:
    column = np.linspace(70, 25, height, dtype=np.float32)[:, None, None] * np.array([1.05, 1.0, 0.95], np.float32)
    image: Image = np.ascontiguousarray(np.broadcast_to(column.astype(np.uint8), (height, width, 3)))
    image.flags.writeable = False
    return image


def _grid_lines(projector: Projector, bed: tuple[float, float]) -> list[Image]:
    """The bed's grid lines, each cut at the near plane (depth is linear along a line)."""
    xs, ys = np.arange(GRID_STEP, bed[0], GRID_STEP), np.arange(GRID_STEP, bed[1], GRID_STEP)
    starts = np.concatenate([np.column_stack([xs, 0 * xs]), np.column_stack([0 * ys, ys])])
    ends = np.concatenate([np.column_stack([xs, 0 * xs + bed[1]]), np.column_stack([0 * ys + bed[0], ys])])
    a = np.column_stack([starts, np.zeros(len(starts))]).astype(np.float32)
    b = np.column_stack([ends, np.zeros(len(ends))]).astype(np.float32)
    _, da = projector.project(a)
    _, db = projector.project(b)
    limit = NEAR * 2
    keep = (da >= limit) | (db >= limit)
    t = np.clip((limit - da) / np.where(db == da, 1e-6, db - da), 0, 1)[:, None]
    a = np.where((da < limit)[:, None], a + (b - a) * t, a)
    b = np.where(
        (db < limit)[:, None], b + (a - b) * np.clip((limit - db) / np.where(da == db, 1e-6, da - db), 0, 1)[:, None], b
    )
    lines = projector.fixed(np.stack([a, b], axis=1)[keep])
    return list(np.ascontiguousarray(lines))


def backdrop(projector: Projector, bed: tuple[float, float], light_z: float, footprint: Image | None) -> Image:
    """Enclosure gradient, the bed with a grid, and a soft contact shadow under the part."""
    pose = projector.pose
    image = _enclosure(pose.width, pose.height).copy()
    corners = np.array([[0, 0, 0], [bed[0], 0, 0], [bed[0], bed[1], 0], [0, bed[1], 0]], np.float32)
    plate = clip_near(corners, projector)
    if plate is None:
        return image
    bed_colour = BED_BGR * (0.55 + 0.45 * max(0.0, light_z))
    cv2.fillPoly(image, [projector.fixed(plate)], bed_colour.tolist(), cv2.LINE_AA, SHIFT)
    cv2.polylines(image, _grid_lines(projector, bed), False, (bed_colour * 1.35).tolist(), 1, cv2.LINE_AA, SHIFT)
    if footprint is not None and len(footprint) >= 3:
        ring = clip_near(np.column_stack([footprint, np.zeros(len(footprint))]).astype(np.float32), projector)
        if ring is not None:
            _shadow(image, projector.fixed(ring), max(3, (pose.width // 80) | 1))
    return image


def _shadow(image: Image, ring: Image, blur: int) -> None:
    """Darken a blurred copy of ``ring`` (fixed point), working only in its bounding box."""
    height, width = image.shape[:2]
    x, y, w, h = cv2.boundingRect(ring >> SHIFT)
    x0, y0 = max(0, x - blur), max(0, y - blur)
    x1, y1 = min(width, x + w + blur), min(height, y + h + blur)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [ring - np.array([x0 << SHIFT, y0 << SHIFT], np.int32)], 255, cv2.LINE_8, SHIFT)
    mask = cv2.GaussianBlur(cv2.dilate(mask, np.ones((3, 3), np.uint8)), (blur, blur), 0)
    factor = 1.0 - 0.4 * (mask.astype(np.float32) / 255.0)
    roi = image[y0:y1, x0:x1]
    roi[:] = (roi * factor[:, :, None]).astype(np.uint8)
