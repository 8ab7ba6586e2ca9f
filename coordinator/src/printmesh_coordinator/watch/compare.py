"""One grid position compared with its last capture: aligned, change tolerant of small motion, growth allowed.

A pixel has changed only if its new value lies outside the range of the old image in a
small neighbourhood (and the other way round): thin bed grid lines and part edges that
move by a pixel or two as the head camera rises with the part do not count, a new strand
or a part that moved does. Change on or next to where the part was (and where it has
been seen to grow) is growth; the rest is unexplained, and measured.

Colour is compared too, apart: a strand one small pixel wide over the bed barely changes the
grey level (its bright core and dark edges average out) but makes the grey bed coloured. That
``faint`` change is noisier (JPEG keeps colour at half resolution, a tinted lamp drifts), so
it only counts where several grid points see it (``judge``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from printmesh_coordinator.watch.frames import Small, align, shifted

CHROMA = 45.0  # colourfulness (max - min of B, G, R; the bed's level = 100) a pixel must leave its old range by
CHANGE = 12.0  # compressed grey levels a pixel must leave its old range by (about 35 % at the bed's level)
REACH = 5  # neighbourhood (pixels, small image) that absorbs small motion
GROW = (3, 2, 6)  # pixels (small image) around the part that count as growth: sideways, upwards, downwards;
# the head camera rises with the part, so its top stays put in the image and its walls grow downwards
NEAR = 0.6  # share of the image height below which the growth region is widened twice
EDGE = 0.35  # share of the image width a thin horizontal band of change spans to be the bed's edge
BORDER = 4  # pixels (small image) at the frame's edges where the scene slides in and out as the camera rises
EXPECTED = 2  # pixels (small image) around the G-code's silhouette where change is growth: its tolerance
RISE_PX = 1.6  # small-image pixels (320 wide) the walls grow downwards per mm of z rise: the default head
# camera (45 degrees down, about 75 mm from the part's top, 90 degrees wide) measured on the renderer

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Reference:
    small: Small
    allow: np.ndarray  # uint8: where the part has been seen to change (grow)
    age: int = 0  # comparisons the growth region was learned from


@dataclass(frozen=True)
class Comparison:
    key: tuple[str, int]
    unexplained: np.ndarray  # uint8 mask, small image
    faint: np.ndarray  # uint8: colour change where the grey did not change enough, outside the growth region
    new_part: np.ndarray  # uint8: part pixels where no part was, nor growth
    lost_part: np.ndarray  # uint8: part pixels gone
    part_before: int  # part pixels in the reference
    learned: int  # comparisons behind the growth region used (0: only the part's colour told it)
    shift: tuple[float, float]
    scale: float  # full pixels per small pixel
    next_reference: Reference


def first(small: Small) -> Reference:
    return Reference(small, np.zeros(small.grey.shape, np.uint8))


def _box_mask(shape: tuple[int, ...], box: Box | None, scale: float) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    if box is not None:
        x, y, w, h = (round(v / scale) for v in box)
        mask[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)] = 255
    return mask


AROUND = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GROW[0] + 1, 2 * GROW[1] + 1))
_EXPECTED = np.ones((2 * EXPECTED + 1, 2 * EXPECTED + 1), np.uint8)
DOWN = np.ones((GROW[2] + 1, 1), np.uint8)  # anchored at its bottom: a pixel allows the ones below it


def widened(seen: np.ndarray, down: int = GROW[2]) -> np.ndarray:
    """``seen`` widened by ``GROW``: around it, and ``down`` pixels further downwards."""
    kernel = DOWN if down == GROW[2] else np.ones((down + 1, 1), np.uint8)
    out: np.ndarray = cv2.dilate(cv2.dilate(seen, AROUND), kernel, anchor=(0, down))
    return out


def reach(rise: float | None, width: int) -> int:
    """Pixels (small image) the walls may grow downwards for a z rise (mm) since the reference: at
    least ``GROW``'s, more for a long gap between captures (many layers printed since)."""
    if rise is None or rise <= 0:
        return GROW[2]
    return max(GROW[2], int(np.ceil(rise * RISE_PX * width / 320)) + 2)


def _allowance(seen: np.ndarray, down: int = GROW[2]) -> np.ndarray:
    """``seen`` widened, twice in the lower part of the image: the nearer the bed (lower in a camera
    looking down), the more it slides when the camera rises with the part."""
    out = widened(seen, down)
    cut = int(seen.shape[0] * NEAR)
    out[cut:] = widened(out[cut:], down)
    return out


def _without_edges(mask: np.ndarray) -> np.ndarray:
    """``mask`` without long thin horizontal bands: the bed's far edge against the enclosure, moved
    by the camera's rise and jitter, not anything printed (a strand is shorter, and curls)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    width = mask.shape[1]
    edges = [i for i in range(1, count) if stats[i, 2] >= EDGE * width and stats[i, 3] <= 8]
    if not edges:
        return mask
    out: np.ndarray = np.where(np.isin(labels, edges), 0, mask).astype(np.uint8)
    return out


def tolerant_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    kernel = np.ones((REACH, REACH), np.uint8)
    lo_b, hi_b = cv2.erode(b, kernel), cv2.dilate(b, kernel)
    lo_a, hi_a = cv2.erode(a, kernel), cv2.dilate(a, kernel)
    ab = np.maximum(cv2.subtract(a, hi_b), cv2.subtract(lo_b, a))
    ba = np.maximum(cv2.subtract(b, hi_a), cv2.subtract(lo_a, b))
    out: np.ndarray = np.maximum(ab, ba)
    return out


def _faint(now: Small, before: Small, shift: tuple[float, float], allow: np.ndarray) -> np.ndarray:
    if now.chroma is None or before.chroma is None:
        return np.zeros(allow.shape, np.uint8)
    diff = tolerant_diff(shifted(now.chroma, shift), before.chroma)
    out = _outside(np.where(diff > CHROMA, 255, 0).astype(np.uint8), allow)
    return cv2.morphologyEx(out, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))


def _outside(changed: np.ndarray, allow: np.ndarray) -> np.ndarray:
    """``changed`` outside the growth region, away from the frame's edges, without the bed's far edge."""
    out = cv2.bitwise_and(changed, cv2.bitwise_not(allow))
    out[:BORDER], out[-BORDER:], out[:, :BORDER], out[:, -BORDER:] = 0, 0, 0, 0
    return _without_edges(out)


def compare(
    key: tuple[str, int],
    before: Reference,
    now: Small,
    box: Box | None,
    rise: float | None = None,
    expected: np.ndarray | None = None,
) -> Comparison:
    """``rise``: the part's z rise since ``before`` (mm), if known: the bed's expected slide, the walls' reach.
    ``expected``: where the G-code's layers lie in ``now`` (``silhouette.py``), if known: change there is growth."""
    down = reach(rise, now.grey.shape[1])
    slide = 0.0 if rise is None or rise <= 0 else rise * RISE_PX * now.grey.shape[1] / 320
    scale = now.full[0] / now.grey.shape[1]
    found = align(now, before.small, slide)
    best: tuple[int, tuple[float, float], np.ndarray, np.ndarray, np.ndarray] | None = None
    candidates = list(dict.fromkeys([found, (0.0, slide), (0.0, 0.0)]))
    for shift in candidates:  # alignment may only help
        grey, part = shifted(now.grey, shift), shifted(now.part, shift, nearest=True)
        diff = tolerant_diff(grey, before.small.grey)
        changed: np.ndarray = np.where(diff > CHANGE, 255, 0).astype(np.uint8)
        changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        count = int(np.count_nonzero(changed))
        if best is None or count < best[0]:
            best = (count, shift, grey, part, changed)
    assert best is not None
    _, shift, grey, part, changed = best
    maybe = shifted(now.maybe, shift, nearest=True)
    old_part, old_maybe = before.small.part, before.small.maybe
    if slide > 0:  # aligned on the bed that slid down: the part's top, which rose with the camera,
        old_maybe = old_maybe | shifted(old_maybe, shift, nearest=True)  # now lies above its old place
    inside: np.ndarray = np.zeros(changed.shape, np.uint8)
    if expected is not None:
        inside = cv2.dilate(shifted(expected, shift, nearest=True), _EXPECTED)
    allow = _allowance(old_maybe | before.allow | _box_mask(changed.shape, box, scale), down) | inside
    unexplained = _outside(changed, allow)
    faint = _faint(now, before.small, shift, allow)
    grows = widened(old_maybe, down) | inside
    new_part = cv2.bitwise_and(part, cv2.bitwise_not(grows))
    new_part = cv2.morphologyEx(new_part, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # slivers are walls growing
    lost_part = cv2.bitwise_and(old_part, cv2.bitwise_not(widened(maybe)))
    grown = cv2.bitwise_and(changed, grows) | before.allow
    grown = shifted(grown, (-shift[0], -shift[1]), nearest=True)  # into the new image's place
    return Comparison(key, unexplained, faint, new_part, lost_part, int(np.count_nonzero(old_part)), before.age, shift,
                      scale, Reference(now, grown, before.age + 1))  # fmt: skip
