"""From the comparisons of one captured layer to a verdict: which failure it looks like, and how sure.

Three measures per image (small-image pixels): ``unexplained``, grey change away from the
part and its growth; ``new``, thick part-coloured areas where no part was; ``lost``, part
gone from where it was. Their shape names the failure:

* detach: much of the part is gone from its place, or appears elsewhere: judged over all the
  flagged images together, since a part that came loose moves whole (12-25 mm and turned, in
  the virtual camera's faults), while a shift moves only the layers above it by a few mm, and
  strands add little part-coloured area (on the development set the flagged images' new part
  was at most 7 % of the part's area for every shift and 2 % for spaghetti, at least 12 % for
  every detach, whose lost share was at least 27 % where the new one was below 40 %);
* shift: new part beside the old, as thick areas (the layers above moved sideways);
* spaghetti: change mostly thin (strands), not thick areas;
* unknown_change: unexplained change that fits none of these.

The first comparison of a position has only the part's colour to tell growth from change
(no growth seen yet), so it needs more change to flag.

A change too small to flag in any one image still flags when two or more grid points see it
(``SEEN`` pixels each; ``AREA`` / 2 together, counting every image with at least ``SEEN`` / 2):
the part is in every image, so a strand or a shifted layer shows from several points, while
noise, drift and a grid line caught by the alignment are each one image's own (on the
development set, no clean captured layer had a second image above 4 px; a fault's first
capture often had two or three images at 7-15 px). Here the colour change (``faint``)
counts too: a strand one small pixel wide over the bed shows in colour, not in grey.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from printmesh_coordinator.watch.compare import Comparison
from printmesh_coordinator.watch.verdict import Kind, Region

AREA = 40  # pixels (small image) of unexplained or new part that make a problem
FIRST = 2.0  # how much more the first comparison of a position needs
LOST = 0.3  # share of the part gone from its place that is a detach
THICK = 0.45  # share of the change that is thick new part for a shift (less: strands)
MAX_REGIONS = 4  # per image
MOVED = 0.2  # share of the flagged images' part area lost or new that is a detach of the whole part
SEEN = 8  # pixels (small image) of unexplained or new part that count as one grid point seeing a change
CORROBORATED = 2  # grid points that must see a change too small for one image alone


@dataclass(frozen=True)
class Finding:
    kind: Kind
    confidence: float
    score: float
    keys: list[tuple[str, int]] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    reason: str = ""


@dataclass(frozen=True)
class Measures:
    unexplained: int
    new: int
    lost: int
    score: float
    faint: int = 0

    @property
    def seen(self) -> int:
        """The change this image contributes when grid points corroborate each other."""
        return max(self.unexplained, self.new, self.faint)


def measure(c: Comparison) -> Measures:
    unexplained, new = int(np.count_nonzero(c.unexplained)), int(np.count_nonzero(c.new_part))
    lost = int(np.count_nonzero(c.lost_part))
    need = AREA * (FIRST if c.learned == 0 else 1.0)
    return Measures(unexplained, new, lost, max(unexplained, new) / need, int(np.count_nonzero(c.faint)))


def blackout_finding(black: list[tuple[str, int]], total: int) -> Finding:
    return Finding("blackout", min(1.0, 0.5 + len(black) / max(total, 1) / 2), 0.0, black, [],
                   f"{len(black)} of {total} images are black")  # fmt: skip


def _regions(c: Comparison) -> list[Region]:
    mask = cv2.bitwise_or(cv2.bitwise_or(c.unexplained, c.new_part), c.faint)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    order = sorted(range(1, count), key=lambda i: -int(stats[i, 4]))[:MAX_REGIONS]
    s = c.scale
    out = []
    for i in order:
        x, y, w, h = (int(v) for v in stats[i, :4])
        out.append(Region(camera=c.key[0], point=c.key[1], x=round(x * s), y=round(y * s), w=round(w * s),
                          h=round(h * s)))  # fmt: skip
    return out


def kind_of(m: Measures, part_before: int, need: float = AREA) -> tuple[Kind, float]:
    """The failure the measures look like, and how well they fit it (0..1); ``need``: the change
    (pixels) that made this image count."""
    if m.lost >= LOST * part_before and m.lost > AREA * 3:
        return "detach", min(1.0, m.lost / max(part_before, 1))
    change = max(m.unexplained, m.faint, 1)
    if m.new >= THICK * change:
        return "shift", min(1.0, m.new / change)
    if max(m.unexplained, m.faint) >= need:
        return "spaghetti", 1.0 - m.new / change
    return "unknown_change", 0.5


def _corroborated(
    comparisons: list[Comparison], measures: list[Measures], score: float
) -> tuple[list[tuple[Comparison, Measures]], float]:
    """The images that together see a change none of them flags alone (see the module's docstring),
    and the layer's score: their change relative to ``AREA`` / 2, if at least ``CORROBORATED`` see it."""
    seeing = [(c, m) for c, m in zip(comparisons, measures, strict=True) if m.seen >= SEEN / 2]
    total = sum(m.seen for _, m in seeing)
    if sum(m.seen >= SEEN for _, m in seeing) < CORROBORATED or total < AREA / 2:
        return [], score
    return seeing, max(score, total / (AREA / 2))


def combine(comparisons: list[Comparison]) -> Finding:
    if not comparisons:
        return Finding("ok", 1.0, 0.0, reason="nothing to compare with yet")
    measures = [measure(c) for c in comparisons]
    score = max(m.score for m in measures)
    need: float = AREA
    flagged = [(c, m) for c, m in zip(comparisons, measures, strict=True) if m.score >= 1.0]
    if not flagged:
        flagged, score = _corroborated(comparisons, measures, score)
        need = SEEN
    if not flagged:
        return Finding("ok", min(1.0, 1.0 - score / 2), score, reason="change only where the part grows")
    flagged.sort(key=lambda cm: -cm[1].score)
    votes: dict[Kind, float] = {}
    for c, m in flagged:
        kind, fit = kind_of(m, c.part_before, need)
        votes[kind] = votes.get(kind, 0.0) + fit * min(max(m.score, 1.0), 5.0)
    kind = max(votes, key=lambda k: votes[k])
    share = votes[kind] / sum(votes.values())
    part = sum(c.part_before for c, _ in flagged)
    moved = max(sum(m.lost for _, m in flagged), sum(m.new for _, m in flagged)) / max(part, 1)
    if kind != "detach" and part > AREA * 3 and moved >= MOVED:  # the part moved whole: detached
        kind, share = "detach", min(1.0, moved / (2 * MOVED))
    strength = min(1.0, (score - 1.0) / 4.0)
    confidence = 0.4 + 0.3 * strength + 0.3 * share
    regions = [r for c, _ in flagged for r in _regions(c)]
    return Finding(kind, min(1.0, confidence), score, [c.key for c, _ in flagged], regions,
                   f"{kind}: unexplained change in {len(flagged)} of {len(comparisons)} images "
                   f"(score {score:.1f})")  # fmt: skip
