"""One grid position compared with its last capture: aligned difference, growth allowed, the rest measured."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from printmesh_coordinator.watch.frames import WIDTH, align, normalised

BLACK_LEVEL = 12.0  # a frame darker than this (mean grey) with no structure is a dead camera
CHANGE = 22.0  # normalised grey levels (image level = 100) a pixel must change by
GROW = 5  # pixels (small image) the growth region is widened by


@dataclass(frozen=True)
class Reference:
    grey: np.ndarray  # float32 small, normalised
    full: tuple[int, int]  # width, height of the captured image
    allow: np.ndarray  # uint8 small: where the part has been seen to grow
    black: bool


@dataclass(frozen=True)
class Comparison:
    key: tuple[str, int]
    score: float  # unexplained changed fraction of the image, per mille
    unexplained: np.ndarray  # uint8 small mask
    boxes: list[tuple[int, int, int, int]]  # components of the unexplained change, small pixels
    shift: tuple[float, float]
    scale: float  # full pixels per small pixel
    next_reference: Reference


def reference(small: np.ndarray, full: tuple[int, int]) -> Reference:
    black = float(small.mean()) < BLACK_LEVEL and float(small.std()) < BLACK_LEVEL
    grey = normalised(small)
    return Reference(grey, full, np.zeros(grey.shape, np.uint8), black)


def _box_mask(shape: tuple[int, ...], box: tuple[int, int, int, int] | None, scale: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    if box is not None:
        x, y, w, h = (round(v / scale) for v in box)
        mask[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)] = 255
    return mask


Box = tuple[int, int, int, int]


def compare(key: tuple[str, int], before: Reference, now: Reference, box: Box | None) -> Comparison:
    scale = now.full[0] / WIDTH
    moved, shift, _ = align(now.grey, before.grey)
    diff = cv2.GaussianBlur(cv2.absdiff(moved, before.grey), (5, 5), 0)
    changed = np.where(diff > CHANGE, 255, 0).astype(np.uint8)
    changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GROW + 1, 2 * GROW + 1))
    allow = cv2.dilate(before.allow | _box_mask(changed.shape, box, scale), kernel)
    unexplained = cv2.bitwise_and(changed, cv2.bitwise_not(allow))
    count, _, stats, _ = cv2.connectedComponentsWithStats(unexplained, connectivity=8)
    boxes = [tuple(int(v) for v in stats[i, :4]) for i in range(1, count) if stats[i, 4] >= 4]
    score = 1000.0 * float(np.count_nonzero(unexplained)) / unexplained.size
    grown = cv2.bitwise_or(before.allow, changed)
    next_ref = Reference(now.grey, now.full, grown, False)
    return Comparison(key, score, unexplained, boxes, shift, scale, next_ref)  # type: ignore[arg-type]
