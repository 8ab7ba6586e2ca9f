"""The silhouette check's memory per grid point, and the finding it makes of one layer.

Kept apart from ``silhouette.py`` (geometry only) the way ``judge.py`` is kept apart from
``compare.py``: the geometry is tested against the camera's renderer, the rules here against
the detector's goals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from printmesh_coordinator.watch.frames import Small
from printmesh_coordinator.watch.judge import Finding
from printmesh_coordinator.watch.silhouette import (
    ONE,
    ImageKey,
    Scene,
    clear_rings,
    fitted,
    flags,
    moved,
    new_outside,
    overlap,
    projected,
    tolerance_of,
)
from printmesh_coordinator.watch.verdict import Kind, Region

THICK = 0.5  # share of the new outside pixels left by a 3x3 opening for a shift (less: strands)
_THREE = np.ones((3, 3), np.uint8)


@dataclass
class Seen:
    count: int
    mask: np.ndarray  # uint8, small image: the new outside pixels
    scale: float  # full pixels per small pixel


@dataclass
class Outside:
    """Per grid point, the part outside the silhouette at its last capture; the counts of this layer."""

    last: dict[ImageKey, np.ndarray] = field(default_factory=dict)
    counted: dict[ImageKey, Seen] = field(default_factory=dict)
    overlap: dict[ImageKey, float] = field(default_factory=dict)  # this layer's part/silhouette overlap

    def see(self, key: ImageKey, scene: Scene, now: Small, compared: bool) -> np.ndarray | None:
        """Measure ``key``'s new outside pixels; counted only when the grid point was ``compared`` (not
        at its first capture, when there is no earlier one to tell what was outside from the start).

        Returns where the layers' hulls lie in ``now`` as placed (for the comparison: change there is
        the part growing), or None without a silhouette."""
        height, width = now.part.shape
        drawn = projected(scene, key, now.full, (width, height))
        if drawn is None:
            return None
        rings, silhouette = clear_rings(*drawn), cv2.bitwise_or(*drawn)
        out, (dx, dy) = fitted(now.part, silhouette, rings)
        if compared:
            new = new_outside(out, self.last.get(key), tolerance_of(rings))
            self.counted[key] = Seen(cv2.countNonZero(new), new, now.full[0] / width)
        self.last[key] = out
        self.overlap[key] = overlap(now.part, moved(silhouette, dx, dy))
        return moved(drawn[0], dx, dy)

    def agreement(self) -> float | None:
        """This layer's mean overlap of part and silhouette: far below the 0.6-0.85 of a camera whose
        geometry is right, the geometry is off (``calibrate.py``)."""
        return round(sum(self.overlap.values()) / len(self.overlap), 3) if self.overlap else None

    def next_layer(self) -> None:
        self.counted = {}
        self.overlap = {}


def silhouette_finding(counted: dict[ImageKey, Seen]) -> Finding | None:
    """A problem when part appeared where the G-code put none (``silhouette.flags``), else None."""
    keys = flags({k: s.count for k, s in counted.items()})
    if not keys:
        return None
    new = sum(counted[k].count for k in keys)
    thick = sum(cv2.countNonZero(cv2.morphologyEx(counted[k].mask, cv2.MORPH_OPEN, _THREE)) for k in keys)
    kind: Kind = "shift" if thick >= THICK * new else "spaghetti"
    top = max(counted[k].count for k in keys)
    score = top / ONE
    confidence = min(1.0, 0.5 + 0.1 * min(score, 3.0) + 0.05 * min(len(keys), 4))
    regions = [_region(k, counted[k]) for k in keys[:4]]
    return Finding(kind, confidence, score, keys, regions,
                   f"{kind}: part where the G-code put none in {len(keys)} of {len(counted)} images"
                   f" ({top} px)")  # fmt: skip


def _region(key: ImageKey, seen: Seen) -> Region:
    x, y, w, h = cv2.boundingRect(seen.mask)
    s = seen.scale
    return Region(camera=key[0], point=key[1], x=round(x * s), y=round(y * s), w=round(w * s), h=round(h * s))
