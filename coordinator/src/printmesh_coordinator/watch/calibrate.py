"""A head camera's geometry fitted to its own captures of a print: what the silhouette needs, measured.

The silhouette check (``silhouette.py``) is only as good as the geometry it is given (offset from
the nozzle, pitch, field of view), and a real carriage camera's is measured by hand: a few
millimetres or degrees off, and the G-code's silhouette lies beside the part. Walls that grow
outside it can then be flagged, and the comparison takes change where it wrongly lies as growth.
A finished print's captures hold the answer: the part's mask in every image, where the head was,
which layers were printed. The geometry whose silhouettes cover the part masks best is the
camera's. It is found by a pattern search from the configured one (the agreement of a geometry is
smooth near the truth and flat far from it, so a start within ~10 mm and ~10 degrees is needed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from printmesh_coordinator.watch.silhouette import ImageKey, cleaned, expected, iou
from printmesh_coordinator.watch_scene import CameraModel, Outline, Scene, Vec3

PITCH = (0.0, 89.0)  # the bounds of CameraGeometry
FOV = (5.5, 149.5)
ROUNDS = ((3.0, 4.0), (1.0, 2.0), (1.0, 1.0))  # per round: blur sigma (pixels), first step (mm or degrees)
MIN_VIEWS = 3  # images with part in them below which nothing is fitted


@dataclass(frozen=True)
class View:
    """One capture: the part's mask (small image, ``frames.prepare``), the full image's size, where the
    head was, and the layers printed before it."""

    part: np.ndarray
    full: tuple[int, int]
    head: Vec3
    printed: tuple[Outline, ...]


@dataclass(frozen=True)
class Fit:
    start: CameraModel
    start_agreement: float
    camera: CameraModel
    agreement: float
    views: int
    evaluations: int


def _masks(view: View, camera: CameraModel) -> np.ndarray | None:
    height, width = view.part.shape
    key: ImageKey = ("camera", 0)
    return expected(Scene(view.printed, {key: view.head}, {"camera": camera}), key, view.full, (width, height))


def agreement(views: Sequence[View], camera: CameraModel) -> float:
    """Mean over the views of the part mask's overlap with the projected silhouette (intersection over
    union, 0..1); a view the geometry cannot project (a layer across the camera's plane) counts 0."""
    total = 0.0
    for view in views:
        silhouette = _masks(view, camera)
        if silhouette is not None:
            total += iou(view.part, silhouette)  # the views' parts are cleaned already (``usable``)
    return total / len(views) if views else 0.0


def _soft(views: Sequence[View], parts: Sequence[np.ndarray], camera: CameraModel, blur: float) -> float:
    """``agreement`` of blurred masks (sum of minima over sum of maxima): it changes smoothly with the
    geometry, where the plain one moves in whole pixels and stalls a search."""
    total = 0.0
    for view, part in zip(views, parts, strict=True):
        silhouette = _masks(view, camera)
        if silhouette is None:
            continue
        drawn = cv2.GaussianBlur(silhouette.astype(np.float32) / 255.0, (0, 0), blur)
        total += float(np.minimum(drawn, part).sum() / max(float(np.maximum(drawn, part).sum()), 1e-6))
    return total / len(views)


def usable(views: Sequence[View]) -> list[View]:
    """The views with some part in them and some layers printed (cleaned like the silhouette check's)."""
    out = []
    for v in views:
        part = cleaned(v.part)
        if v.printed and cv2.countNonZero(part) >= 30:
            out.append(replace(v, part=part))
    return out


def _loss(views: Sequence[View], parts: Sequence[np.ndarray], blur: float, x: np.ndarray) -> float:
    return -_soft(views, parts, _camera(x), blur)


def _vector(camera: CameraModel) -> np.ndarray:
    return np.array([*camera.offset, camera.pitch, camera.fov], np.float64)


def _camera(x: np.ndarray) -> CameraModel:
    offset = (round(float(x[0]), 2), round(float(x[1]), 2), round(float(x[2]), 2))
    return CameraModel(offset, round(float(np.clip(x[3], *PITCH)), 2), round(float(np.clip(x[4], *FOV)), 2))


def _simplex(f: Callable[[np.ndarray], float], x0: np.ndarray, step: float, budget: int) -> tuple[np.ndarray, int]:
    """Nelder-Mead, minimising ``f`` from ``x0``: the parameters trade off (a camera further back, or a
    narrower field of view), which a search along one axis at a time does not follow."""
    points = [x0] + [x0 + step * row for row in np.eye(len(x0))]
    values = [f(p) for p in points]
    used = len(points)
    while used < budget:
        order = np.argsort(values)
        points, values = [points[i] for i in order], [values[i] for i in order]
        if values[-1] - values[0] < 1e-5 and max(float(np.abs(p - points[0]).max()) for p in points) < 0.05:
            break
        centre = np.mean(points[:-1], axis=0)
        reflected = centre + (centre - points[-1])
        fr = f(reflected)
        used += 1
        if fr < values[0]:
            expanded = centre + 2 * (centre - points[-1])
            fe = f(expanded)
            used += 1
            points[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            points[-1], values[-1] = reflected, fr
        else:
            contracted = centre + 0.5 * (points[-1] - centre)
            fc = f(contracted)
            used += 1
            if fc < values[-1]:
                points[-1], values[-1] = contracted, fc
            else:
                points = [points[0]] + [points[0] + 0.5 * (p - points[0]) for p in points[1:]]
                values = [values[0]] + [f(p) for p in points[1:]]
                used += len(points) - 1
    best = int(np.argmin(values))
    return points[best], used


def fit(views: Sequence[View], start: CameraModel, budget: int = 900) -> Fit:
    """The geometry near ``start`` whose silhouettes agree best with ``views`` (``ValueError`` with fewer
    than ``MIN_VIEWS`` usable ones); ``budget``: projections of all views, at most."""
    kept = usable(views)
    if len(kept) < MIN_VIEWS:
        raise ValueError(f"{len(kept)} captures show the part with layers printed; at least {MIN_VIEWS} are needed")
    x, used = _vector(start), 0
    for i, (blur, step) in enumerate(ROUNDS):
        parts = [cv2.GaussianBlur(v.part.astype(np.float32) / 255.0, (0, 0), blur) for v in kept]
        loss = functools.partial(_loss, kept, parts, blur)
        x, spent = _simplex(loss, x, step, (budget - used) // (len(ROUNDS) - i))
        used += spent
    camera, first = _camera(x), agreement(kept, start)
    score = agreement(kept, camera)
    if score < first:  # never worse than where it started
        camera, score = start, first
    return Fit(start, first, camera, score, len(kept), used)
