"""The print watch's per-job memory and its judgement of each captured layer.

A ``Watcher`` lives as long as one job. For every (camera, grid point) it keeps the last
captured image, small and grey, and the region where the part has been seen to grow; each
new capture is aligned to it and compared. Change where the part is expected to grow (the
region that changed at the earlier captures, or the caller's ``GrowthHint``) is growth;
change elsewhere is unexplained, and its shape says which failure it looks like.

Every layer's images become the next references, a flagged layer's too: a problem is
reported at the layer it appears, and a false one does not repeat at every later layer.
Black frames never become references (the position is compared with its last real image).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from printmesh_coordinator.watch.compare import Comparison, Reference, compare, first
from printmesh_coordinator.watch.frames import decode, prepare
from printmesh_coordinator.watch.judge import Finding, blackout_finding, combine
from printmesh_coordinator.watch.silhouette import Scene
from printmesh_coordinator.watch.silhouette_judge import Outside, silhouette_finding
from printmesh_coordinator.watch.verdict import Verdict

ImageKey = tuple[str, int]  # (camera name, grid point index)
Box = tuple[int, int, int, int]  # x, y, w, h in full-size image pixels


@dataclass(frozen=True)
class GrowthHint:
    """Where new material is expected at this capture, as far as the caller knows.

    ``boxes``: per image, a box (full-size pixels) where change is growth, e.g. where the
    layers printed since the last capture project to when the camera's geometry is known;
    change inside it never counts. ``z``/``previous_z`` (the part's top now and at the capture
    compared with, mm): their difference says how far the bed slides down in the head camera's
    image (the camera rose with the part) and how far the walls may have grown; it matters once
    that exceeds the jitter, i.e. for captures many layers apart. Everything is optional: without
    a hint the watch learns the growth region of each position from the part's colour and the
    earlier captures. ``scene``: the printed layers' outlines, the head's position per image and
    the cameras' geometry: with it, part outside the G-code's silhouette is a problem too
    (``silhouette.py``).
    """

    z: float | None = None
    previous_z: float | None = None
    boxes: Mapping[ImageKey, Box] = field(default_factory=dict)
    scene: Scene | None = None


def image_name(key: ImageKey) -> str:
    return f"{key[0]}/{key[1]}"


class Watcher:
    """One job's watch: call ``judge`` once per captured layer, in order."""

    def __init__(self) -> None:
        self._refs: dict[ImageKey, Reference] = {}
        self._layer: int | None = None
        self._black: set[ImageKey] = set()
        self._outside = Outside()

    @property
    def last_layer(self) -> int | None:
        return self._layer

    def reset(self) -> None:
        self._refs.clear()
        self._black.clear()
        self._outside = Outside()
        self._layer = None

    def judge(
        self,
        layer: int,
        images: Mapping[ImageKey, np.ndarray | bytes],
        growth: GrowthHint | None = None,
        names: Mapping[ImageKey, str] | None = None,
    ) -> Verdict:
        """The verdict of ``layer`` from its images; the images become the references of the next one.

        ``names`` maps a key to its image file name (for ``flagged``); without it, ``camera/point``."""
        started = time.perf_counter()
        hint = growth or GrowthHint()
        compared_with = self._layer
        rise = None if hint.z is None or hint.previous_z is None else hint.z - hint.previous_z
        comparisons: list[Comparison] = []
        black: list[ImageKey] = []
        updates: dict[ImageKey, Reference] = {}
        for key, raw in images.items():
            try:
                small, full = decode(raw)
            except ValueError:
                continue
            now = prepare(small, full)
            if now.black:
                black.append(key)
                continue  # a black frame never becomes a reference
            before = self._refs.get(key)
            if before is None:
                updates[key] = first(now)
                if hint.scene is not None:
                    self._outside.see(key, hint.scene, now, compared=False)
                continue
            expected = None if hint.scene is None else self._outside.see(key, hint.scene, now, compared=True)
            comparison = compare(key, before, now, hint.boxes.get(key), rise, expected)
            comparisons.append(comparison)
            updates[key] = comparison.next_reference
        finding: Finding
        if black and len(black) * 2 >= len(images):
            finding = blackout_finding(black, len(images))
        else:
            finding = combine(comparisons)
            if finding.kind == "ok":
                finding = silhouette_finding(self._outside.counted) or finding
        checked, agreement = len(self._outside.counted), self._outside.agreement()
        self._outside.next_layer()
        self._refs.update(updates)
        self._layer = layer
        label = names or {}
        return Verdict(
            layer=layer,
            verdict=finding.kind,
            confidence=round(finding.confidence, 3),
            score=round(finding.score, 3),
            region=finding.regions,
            flagged=[label.get(k, image_name(k)) for k in finding.keys],
            compared_with=compared_with,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
            reason=finding.reason,
            silhouette=checked,
            agreement=agreement,
        )
