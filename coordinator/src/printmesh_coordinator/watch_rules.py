"""Print watch, the decisions: what a verdict means for a printer, given its ``watch:`` settings.

Pure functions, no I/O: whether a verdict is a problem, what to do about it, where the
layer's watch sidecar goes, and the verdict as published (``WatchVerdict``) from whatever
the detector returned. The shell (``watch_shell.py``) does what they say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from printmesh_coordinator.config import WatchConfig
from printmesh_core.models.coordinator import LayerCapture
from printmesh_core.models.watch import VerdictKind, WatchAction, WatchRegion, WatchVerdict

KINDS: tuple[VerdictKind, ...] = ("ok", "spaghetti", "shift", "detach", "blackout", "unknown_change")
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


def sidecar_path(metadata_path: str) -> str:
    """``.../layer_0015_metadata_<time>.json`` → ``.../layer_0015_watch_<time>.json``."""
    path = PurePosixPath(metadata_path)
    return str(path.with_name(path.name.replace("_metadata_", f"_{SIDECAR}_", 1)))


def judgeable(md: LayerCapture) -> bool:
    """A layer worth judging: images on disk and its metadata written (the sidecar goes beside it)."""
    return bool(md.images) and md.metadata_path is not None and md.missed is None


def _kind(value: Any) -> VerdictKind:
    text = str(getattr(value, "value", value))
    return next((k for k in KINDS if k == text), "unknown_change")


def _number(value: Any, default: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number == number and abs(number) != float("inf") else default  # NaN and inf: not a number


def _image_names(keys: Iterable[Any], names: dict[tuple[str, int], str]) -> list[str]:
    """The detector names an image by (camera, grid index) or by a name; we publish file names."""
    out: list[str] = []
    for key in keys:
        name = names.get(tuple(key)) if isinstance(key, tuple | list) and len(key) == 2 else None
        if name is None and isinstance(key, str):
            name = next((n for n in names.values() if n == key or n.startswith(f"{key}")), key)
        if name is not None and name not in out:
            out.append(name)
    return out


def _regions(raw: Iterable[Any], names: dict[tuple[str, int], str]) -> list[WatchRegion]:
    out: list[WatchRegion] = []
    for region in raw:
        get = region.get if isinstance(region, dict) else lambda k, d=None, r=region: getattr(r, k, d)
        key = get("image") or (get("camera"), get("index", get("point")))
        image = _image_names([key], names)
        box = get("box") or (get("x", 0), get("y", 0), get("width", get("w", 0)), get("height", get("h", 0)))
        try:
            x, y, w, h = (max(0, int(_number(v))) for v in box)
        except (TypeError, ValueError):
            continue
        out.append(WatchRegion(image=image[0] if image else "", x=x, y=y, width=w, height=h))
    return out


def published(
    config: WatchConfig, md: LayerCapture, verdict: Any, names: dict[tuple[str, int], str], note: str | None = None
) -> WatchVerdict:
    """The verdict as published and written beside the metadata, whatever the detector's own type."""
    kind = _kind(getattr(verdict, "verdict", "ok"))
    confidence = min(1.0, max(0.0, _number(getattr(verdict, "confidence", 0.0))))
    problem, action = judged(config, kind, confidence)
    earlier = getattr(verdict, "compared_with", None)
    earlier = [earlier] if isinstance(earlier, int) else earlier or []
    compared = [int(v) for v in earlier if isinstance(v, int | float)]
    regions = getattr(verdict, "region", None) or getattr(verdict, "regions", None) or []
    reason = getattr(verdict, "reason", None)
    return WatchVerdict(
        printer=md.printer,
        job=md.job,
        layer=md.layer,
        verdict=kind,
        confidence=round(confidence, 4),
        score=round(min(1_000_000.0, max(0.0, _number(getattr(verdict, "score", 0.0)))), 4),
        problem=problem,
        action=action,
        regions=_regions(regions, names),
        flagged=_image_names(getattr(verdict, "flagged", None) or [], names),
        compared_with=compared,
        elapsed_ms=round(max(0.0, _number(getattr(verdict, "elapsed_ms", 0.0))), 3),
        metadata_path=md.metadata_path,
        reason=str(reason)[:500] if reason else None,
        note=note,
    )
