"""Print watch, the decisions: what a verdict means for a printer, given its ``watch:`` settings.

Pure functions, no I/O: whether a verdict is a problem, what to do about it, where the
layer's watch sidecar goes, and the verdict as published (``WatchVerdict``) from the
detector's ``Verdict``. The shell (``watch_shell.py``) does what they say. The detector's
package (numpy, OpenCV) is only imported by the watch's thread, never here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from printmesh_coordinator.config import WatchConfig
from printmesh_core.models.coordinator import LayerCapture
from printmesh_core.models.watch import VerdictKind, WatchAction, WatchRegion, WatchVerdict

if TYPE_CHECKING:
    from printmesh_coordinator.watch.verdict import Verdict

SIDECAR = "watch"  # layer_0015_watch_<time>.json beside layer_0015_metadata_<time>.json


@dataclass(frozen=True)
class Growth:
    """What the coordinator knows of the part's growth since the previous captured layer."""

    layer: int
    z: float | None
    previous_layer: int | None
    previous_z: float | None

    @property
    def layers(self) -> int:
        """Layers printed since the previous captured layer (the layer itself when it is the first)."""
        return self.layer - self.previous_layer if self.previous_layer is not None else self.layer

    @property
    def layer_height(self) -> float | None:
        """Mean layer height since the previous capture, mm; None when it cannot be told."""
        if self.z is None or self.previous_z is None or self.previous_layer is None or self.layers <= 0:
            return None
        height = (self.z - self.previous_z) / self.layers
        return round(height, 4) if height > 0 else None


def judged(config: WatchConfig, kind: VerdictKind, confidence: float) -> tuple[bool, WatchAction]:
    """(problem, action): a problem is a verdict other than ok at ``min_confidence`` or more;
    below it, or with ``on_problem: none``, the verdict is only published."""
    problem = kind != "ok" and confidence >= config.min_confidence and config.on_problem != "none"
    if not problem:
        return False, "none"
    return True, "pause" if config.on_problem == "pause" else "notify"


def once_per_job(verdict: WatchVerdict, paused_already: bool) -> WatchVerdict:
    """A job is paused once: whoever resumes it has seen the problem and chose to go on, so a later
    layer that still shows it (the detector keeps comparing with the last good capture) notifies."""
    return verdict.model_copy(update={"action": "notify"}) if paused_already and verdict.action == "pause" else verdict


def sidecar_path(metadata_path: str) -> str:
    """``.../layer_0015_metadata_<time>.json`` → ``.../layer_0015_watch_<time>.json``."""
    path = PurePosixPath(metadata_path)
    return str(path.with_name(path.name.replace("_metadata_", f"_{SIDECAR}_", 1)))


def judgeable(md: LayerCapture) -> bool:
    """A layer worth judging: images on disk and its metadata written (the sidecar goes beside it)."""
    return bool(md.images) and md.metadata_path is not None and md.missed is None


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _regions(verdict: Verdict, names: dict[tuple[str, int], str]) -> list[WatchRegion]:
    return [
        WatchRegion(image=names.get((r.camera, r.point), f"{r.camera}/{r.point}"), x=r.x, y=r.y, width=r.w, height=r.h)
        for r in verdict.region
    ]


def published(
    config: WatchConfig, md: LayerCapture, verdict: Verdict, names: dict[tuple[str, int], str], note: str | None = None
) -> WatchVerdict:
    """The detector's verdict as published and written beside the metadata, with our action.

    ``names``: the file name of each (camera, grid index) image, also given to the detector,
    so ``flagged`` already holds file names."""
    confidence = min(1.0, max(0.0, _finite(verdict.confidence)))
    problem, action = judged(config, verdict.verdict, confidence)
    return WatchVerdict(
        printer=md.printer,
        job=md.job,
        layer=md.layer,
        verdict=verdict.verdict,
        confidence=round(confidence, 4),
        score=round(min(1_000_000.0, max(0.0, _finite(verdict.score))), 4),
        problem=problem,
        action=action,
        regions=_regions(verdict, names),
        flagged=list(dict.fromkeys(verdict.flagged)),
        compared_with=[verdict.compared_with] if verdict.compared_with is not None else [],
        elapsed_ms=round(max(0.0, _finite(verdict.elapsed_ms)), 3),
        metadata_path=md.metadata_path,
        reason=verdict.reason[:500] or None,
        note=note,
        silhouette=verdict.silhouette,
        agreement=verdict.agreement,
    )
