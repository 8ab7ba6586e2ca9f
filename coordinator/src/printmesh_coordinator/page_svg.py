"""The job page's plots as inline SVG, drawn here: no JavaScript library, nothing to fetch.

Two bar charts over the held layers: how long printing took per layer between captures
(from the holds' start times), and each hold's time split into moves, settle, capture,
release and overhead (stacked, so the bar is the whole hold).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from printmesh_coordinator.job_folder import Row

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 14, 34
PARTS = (  # (label, colour, HoldTimings field)
    ("moves", "#4e79a7", "waiting_for_moves"),
    ("settle", "#f28e2b", "settle"),
    ("capture", "#59a14f", "capture"),
    ("release", "#b07aa1", "release"),
    ("overhead", "#9c9c9c", "overhead"),
)


def _ticks(top: float) -> list[float]:
    step = 10 ** len(str(int(max(top, 1e-9) / 4))) / 10 if top >= 4 else 0.5 if top >= 1 else 0.1
    for mult in (1, 2, 5, 10):
        if top / (step * mult) <= 5:
            step *= mult
            break
    return [i * step for i in range(int(top / step) + 1)]


def _frame(title: str, labels: Sequence[str], top: float, unit: str, body: list[str], css: str) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [
        f'<svg class="{css}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for tick in _ticks(top):
        y = TOP + plot_h - tick / top * plot_h
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    out.append(f'<text x="12" y="{TOP + plot_h / 2:.0f}" transform="rotate(-90 12 {TOP + plot_h / 2:.0f})" '
               f'text-anchor="middle">{escape(unit)}</text>')  # fmt: skip
    out += body
    slot = plot_w / max(1, len(labels))
    every = max(1, len(labels) // 20)
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">layer</text></svg>')
    return "".join(out)


def _bar(i: int, n: int, y0: float, value: float, top: float, colour: str, tip: str) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, n)
    height = value / top * plot_h
    x, y = LEFT + slot * i + slot * 0.15, TOP + plot_h - y0 / top * plot_h - height
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}" fill="{colour}">'
            f"<title>{escape(tip)}</title></rect>")  # fmt: skip


def layer_times(rows: Sequence[Row], print_start: float | None) -> list[float | None]:
    """Seconds of printing per layer since the previous hold (its own hold time taken out)."""
    out: list[float | None] = []
    prev: tuple[int, float] | None = (0, print_start) if print_start else None
    for row in rows:
        if prev is None or row.layer <= prev[0]:
            out.append(None)
        else:
            out.append(max(0.0, row.started - prev[1]) / (row.layer - prev[0]))
        prev = (row.layer, row.started + row.timings.hold_duration)
    return out


def layer_plot(rows: Sequence[Row], print_start: float | None) -> str:
    times = layer_times(rows, print_start)
    top = max([t for t in times if t is not None] + [0.0]) * 1.1 or 1.0
    body = [
        _bar(i, len(rows), 0, t, top, "#4e79a7", f"layer {r.layer}: {t:.1f} s per layer since the previous hold")
        for i, (r, t) in enumerate(zip(rows, times, strict=True))
        if t is not None
    ]
    labels = [str(r.layer) for r in rows]
    return _frame("Printing time per layer between holds", labels, top, "s / layer", body, "plot plot-layers")


def hold_plot(rows: Sequence[Row]) -> str:
    top = max([r.timings.hold_duration for r in rows] + [0.0]) * 1.1 or 1.0
    body: list[str] = []
    for i, row in enumerate(rows):
        y0 = 0.0
        for label, colour, key in PARTS:
            value = float(getattr(row.timings, key))
            if value > 0:
                tip = f"layer {row.layer}: {label} {value:.2f} s of {row.timings.hold_duration:.2f} s"
                body.append(_bar(i, len(rows), y0, value, top, colour, tip))
                y0 += value
    labels = [str(r.layer) for r in rows]
    return _frame("Each hold's time split", labels, top, "s held", body, "plot plot-holds")


def legend() -> str:
    items = "".join(f'<span><i style="background:{c}"></i>{escape(label)}</span>' for label, c, _ in PARTS)
    return f'<p class="legend">{items}</p>'
