"""Seeded print failures drawn into the virtual camera's frames, for tests and demos.

Each fault turns on when the printer reaches its layer, and its shape comes from its own
seed, so a test asking for ``shift`` at layer 12 with seed 3 gets the same frames every run.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from printmesh_camera.sources.base import Image
from printmesh_camera.sources.part import Geometry, Placement
from printmesh_camera.sources.scene import SHIFT, Projector
from printmesh_camera.virtual_config import FaultConfig

STRANDS_PER_LAYER = 3
STRAND_POINTS = 40


def placement(faults: list[FaultConfig], geo: Geometry, layers: int) -> Placement:
    """Where each layer is drawn once the printer has reached ``layers``."""
    place = Placement.none(geo.count)
    angle, offset = place.angle.copy(), place.offset.copy()
    hidden: int | None = None
    for fault in faults:
        if layers < fault.layer:
            continue
        rng = np.random.default_rng([fault.seed, fault.layer, 1])
        if fault.kind == "shift":
            theta = rng.uniform(0, 2 * math.pi)
            size = rng.uniform(2.5, 5.0)
            offset[fault.layer + 1 :] += np.array([math.cos(theta), math.sin(theta)], np.float32) * size
        elif fault.kind == "detach":
            theta = rng.uniform(0, 2 * math.pi)
            size = rng.uniform(12.0, 25.0)
            offset[:] += np.array([math.cos(theta), math.sin(theta)], np.float32) * size
            angle[:] += rng.uniform(0.3, 0.8) * rng.choice([-1.0, 1.0])
        elif fault.kind == "spaghetti":
            hidden = fault.layer if hidden is None else min(hidden, fault.layer)
    return Placement(angle, offset, (float(geo.centre[0]), float(geo.centre[1])), hidden)


def blacked_out(faults: list[FaultConfig], layers: int) -> bool:
    return any(f.kind == "blackout" and layers >= f.layer for f in faults)


def strands(fault: FaultConfig, geo: Geometry, z0: float, layers: int) -> list[Image]:
    """Loose filament (3D polylines) grown since ``fault.layer``: more and longer strands per layer."""
    grown = layers - fault.layer + 1
    if grown <= 0:
        return []
    rng = np.random.default_rng([fault.seed, fault.layer, 2])
    cx, cy = geo.centre
    out = []
    for k in range(min(grown * STRANDS_PER_LAYER, 400)):
        start = np.array([cx + rng.normal(0, 6), cy + rng.normal(0, 6), z0 + rng.uniform(0.2, 1.5)])
        heading = rng.uniform(0, 2 * math.pi)
        turn = rng.normal(0, 0.35, STRAND_POINTS)
        headings = heading + np.cumsum(turn)
        step = rng.uniform(0.8, 1.6)
        dx, dy = np.cos(headings) * step, np.sin(headings) * step
        lift = np.abs(np.cumsum(rng.normal(0, 0.35, STRAND_POINTS)))
        length = max(4, min(STRAND_POINTS, int(STRAND_POINTS * (grown - k / STRANDS_PER_LAYER) / 4)))
        pts = np.column_stack([start[0] + np.cumsum(dx), start[1] + np.cumsum(dy), start[2] + lift])[:length]
        out.append(pts.astype(np.float32))
    return out


def draw_strands(image: Image, polylines: list[Image], projector: Projector, colour_bgr: Image, seed: int) -> None:
    if not polylines:
        return
    rng = np.random.default_rng([seed, 3])
    scale = max(1, round(projector.pose.width / 640))
    for pts in polylines:
        pixels, depth = projector.project(pts)
        if (depth < 2).any():
            continue
        fixed = np.round(pixels * (1 << SHIFT)).astype(np.int32)
        tone = np.clip(colour_bgr * rng.uniform(0.5, 1.15), 0, 255).tolist()
        cv2.polylines(image, [fixed], False, (colour_bgr * 0.3).tolist(), scale + 2, cv2.LINE_AA, SHIFT)
        cv2.polylines(image, [fixed], False, tone, scale, cv2.LINE_AA, SHIFT)
