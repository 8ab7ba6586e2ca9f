"""A detector module for the watch's helper-process tests: it remembers the last layer it judged
(its history lives in the process that imported it), says which process judged, and raises at
layer 99 like a detector bug would."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from printmesh_coordinator.watch.verdict import Verdict


@dataclass(frozen=True)
class GrowthHint:
    z: float | None = None
    previous_z: float | None = None
    boxes: Mapping[Any, Any] = field(default_factory=dict)
    scene: Any = None  # the G-code's silhouette (watch_scene.Scene), unused here


class Watcher:
    def __init__(self) -> None:
        self.last: int | None = None

    def judge(self, layer: int, images: Mapping[Any, bytes], growth: GrowthHint, names: Any = None) -> Verdict:
        if layer == 99:
            raise ValueError("a detector bug")
        verdict = Verdict(layer=layer, verdict="ok", confidence=0.9, score=0.1, compared_with=self.last,
                          elapsed_ms=1.0, reason=f"{os.getpid()} {len(images)} {growth.z}")  # fmt: skip
        self.last = layer
        return verdict
