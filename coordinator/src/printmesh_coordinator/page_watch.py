"""The job page's print watch section: the change score of every judged layer, and the verdicts.

Drawn with the timing plots' frame (``page_svg``): one bar per held layer, red where the
watch raised a problem, orange for a verdict other than ok below ``min_confidence``, grey
when ok. The flagged images themselves are outlined in the contact sheet (``page_html``).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from printmesh_coordinator.job_folder import Row
from printmesh_coordinator.page_svg import _bar, _frame
from printmesh_core.models.watch import WatchVerdict

GEOMETRY_OFF = 0.4  # median overlap of part and silhouette below which the page says the geometry is off
COLOURS = {"problem": "#d62728", "doubt": "#f2a23c", "ok": "#8da0b6"}


def level(watch: WatchVerdict) -> str:
    """problem (raised), doubt (not ok, below min_confidence or on_problem: none) or ok."""
    return "problem" if watch.problem else "ok" if watch.verdict == "ok" else "doubt"


def score_plot(rows: Sequence[Row]) -> str:
    judged = [r for r in rows if r.watch is not None]
    top = max([r.watch.score for r in judged if r.watch is not None] + [0.0]) * 1.1 or 1.0
    body = []
    for i, row in enumerate(rows):
        w = row.watch
        if w is None:
            continue
        tip = f"layer {row.layer}: {w.verdict}, confidence {w.confidence:.2f}, score {w.score:.3g}"
        tip += f", silhouette overlap {w.agreement:.2f}" if w.agreement is not None else ""
        body.append(_bar(i, len(rows), 0, max(w.score, top * 0.004), top, COLOURS[level(w)], tip))
    labels = [str(r.layer) for r in rows]
    return _frame("Print watch: change score per layer", labels, top, "score", body, "plot plot-watch")


def section(rows: Sequence[Row]) -> str:
    judged = [(r.layer, r.watch) for r in rows if r.watch is not None]
    if not judged:
        return '<p class="note">No layer judged yet (print watch off, or no layer captured).</p>'
    problems = [(layer, w) for layer, w in judged if w.problem]
    if problems:
        layer, w = problems[0]
        head = (f'<p class="watch-verdict problem">Problem at layer {layer}: {escape(w.verdict)} '
                f"(confidence {w.confidence:.2f}, {escape(w.action)})</p>")  # fmt: skip
    else:
        head = f'<p class="watch-verdict ok">No problem raised in {len(judged)} judged layers.</p>'
    items = "".join(
        f'<li class="{level(w)}" data-layer="{layer}">layer {layer}: {escape(w.verdict)}, confidence '
        f"{w.confidence:.2f}, score {w.score:.3g}, {len(w.flagged)} images flagged</li>"
        for layer, w in judged
        if w.verdict != "ok"
    )
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(k)}</span>' for k, c in COLOURS.items())
    listed = f'<ul class="watch">{items}</ul>' if items else ""
    return f'{head}{geometry_note(judged)}{score_plot(rows)}<p class="legend">{legend}</p>{listed}'


def geometry_note(judged: Sequence[tuple[int, WatchVerdict]]) -> str:
    """A warning when the G-code's silhouette lies beside the part in most layers: the camera's
    geometry is off, and the watch's silhouette check sees less (or raises false problems)."""
    values = sorted(w.agreement for _, w in judged if w.agreement is not None)
    if not values or values[len(values) // 2] >= GEOMETRY_OFF:
        return ""
    median = values[len(values) // 2]
    return (f'<p class="note watch-geometry">The G-code\'s silhouette overlaps the part poorly in these images '
            f"(median {median:.2f}; a camera whose geometry is right gives about 0.6-0.85): the camera's geometry "
            "(offset, pitch, fov) is probably off. <code>printmesh coordinator --calibrate</code> fits it to this "
            "job's images (docs/watch.md).</p>")  # fmt: skip
