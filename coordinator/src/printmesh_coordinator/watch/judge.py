"""From the comparisons of one captured layer to a verdict: which failure it looks like, and how sure."""

from __future__ import annotations

from dataclasses import dataclass, field

from printmesh_coordinator.watch.compare import Comparison
from printmesh_coordinator.watch.verdict import Kind, Region

THRESHOLD = 3.0  # unexplained change, per mille of an image, that is a problem


@dataclass(frozen=True)
class Finding:
    kind: Kind
    confidence: float
    score: float
    keys: list[tuple[str, int]] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    reason: str = ""


def blackout_finding(black: list[tuple[str, int]], total: int) -> Finding:
    return Finding("blackout", min(1.0, len(black) / max(total, 1)), 0.0, black, [],
                   f"{len(black)} of {total} images are black")  # fmt: skip


def _regions(c: Comparison) -> list[Region]:
    out = []
    for x, y, w, h in c.boxes[:8]:
        s = c.scale
        px = (round(x * s), round(y * s), round(w * s), round(h * s))
        out.append(Region(camera=c.key[0], point=c.key[1], x=px[0], y=px[1], w=px[2], h=px[3]))
    return out


def combine(comparisons: list[Comparison]) -> Finding:
    if not comparisons:
        return Finding("ok", 1.0, 0.0, reason="nothing to compare with yet")
    worst = max(c.score for c in comparisons)
    score = worst / THRESHOLD
    flagged = [c for c in comparisons if c.score >= THRESHOLD]
    if not flagged:
        return Finding("ok", min(1.0, 1.0 - score / 2), score, reason="change only where the part grows")
    regions = [r for c in flagged for r in _regions(c)]
    return Finding("unknown_change", min(1.0, 0.5 + score / 10), score, [c.key for c in flagged], regions,
                   f"unexplained change in {len(flagged)} of {len(comparisons)} images")  # fmt: skip
