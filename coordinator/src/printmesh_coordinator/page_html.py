"""The job page's HTML: one static document, every string escaped, every link relative.

Links are the plain names of files inside the job folder, percent-encoded, so the page
works from ``file://``, a web server or a bucket alike. While the job runs the page asks
the browser to reload itself every few seconds; the final page does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import quote

from printmesh_coordinator import page_svg, page_watch
from printmesh_coordinator.job_folder import JobFolder, Row

REFRESH_S = 10
STATE_META = "printmesh-page"  # <meta name=... content="running|final">


@dataclass(frozen=True)
class Video:
    href: str  # relative to the job folder
    camera: str
    index: int
    frames: int
    poster: str | None


@dataclass
class Built:
    """What a page build wrote (returned across the page's helper process, so kept light: no OpenCV)."""

    index: Path
    thumbs_written: int = 0
    videos: list[Video] = field(default_factory=list)
    note: str | None = None


def href(relative: str) -> str:
    """A relative URL (percent-encoded path) ready for an attribute."""
    return escape(quote(relative, safe="/"), quote=True)


def when(ts: float | None) -> str:
    if ts is None:
        return "unknown"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(job: JobFolder, final: bool, now: float) -> str:
    s = job.summary
    images = sum(len(r.shots) for r in job.rows)
    failures = [(r.layer, f) for r in job.rows for f in r.failures]
    ended = when(s.ended_at) if s is not None else ("not recorded" if final else f"running (updated {when(now)})")
    items = [
        ("File", job.gcode_file or "unknown"),
        ("Printer", job.printer or "unknown"),
        ("Started", when(job.started)),
        ("Ended", ended),
        ("Outcome", s.outcome if s is not None else "running" if not final else "unknown"),
        ("Layers held", str(len(job.rows))),
        ("Layers complete", str(sum(1 for r in job.rows if r.complete))),
        ("Images", str(images)),
        ("Failures", str(len(failures))),
        ("Time held", f"{sum(r.timings.hold_duration for r in job.rows):.1f} s"),
    ]
    out = ['<dl class="summary">'] + [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items] + ["</dl>"]
    if failures:
        out.append('<ul class="failures">')
        out += [f"<li>layer {layer}: {escape(f.kind)}: {escape(f.message)}</li>" for layer, f in failures]
        out.append("</ul>")
    if job.unreadable:
        out.append(f'<p class="note">Unreadable metadata skipped: {escape(", ".join(job.unreadable))}</p>')
    return "".join(out)


def _column_title(job: JobFolder, camera: str, index: int) -> str:
    several = len({c for c, _ in job.columns}) > 1
    return f"pos {index:02d}" + (f" · {camera}" if several else "")


def _row(job: JobFolder, row: Row, thumbs: dict[str, str]) -> str:
    css = "" if row.complete else ' class="incomplete"'
    z = f"<br><small>Z {row.z:g}</small>" if row.z is not None else ""
    verdict = f' data-verdict="{escape(row.watch.verdict)}"' if row.watch is not None else ""
    flagged = set(row.watch.flagged) if row.watch is not None else set()
    mark = f' class="flagged {page_watch.level(row.watch)}"' if row.watch is not None else ""
    cells = [f'<tr{css} data-layer="{row.layer}"{verdict}><th class="layer">layer {row.layer}{z}</th>']
    for camera, index in job.columns:
        shot = row.shots.get((camera, index))
        if shot is None:
            cells.append('<td class="missing">missing</td>')
            continue
        thumb = thumbs.get(shot.name)
        alt = escape(f"layer {row.layer}, {_column_title(job, camera, index)}", quote=True)
        inner = f'<img src="{href(thumb)}" alt="{alt}" loading="lazy">' if thumb else "unreadable image"
        td = f"<td{mark}>" if shot.name in flagged else "<td>"
        cells.append(f'{td}<a class="shot" href="{href(shot.name)}" data-sha256="{escape(shot.sha256, quote=True)}" '
                     f'data-camera="{escape(camera, quote=True)}" data-index="{index}">{inner}</a></td>')  # fmt: skip
    if not row.complete:
        why = "".join(f"<li>{escape(f.kind)}: {escape(f.message)}</li>" for f in row.failures)
        cells.append(f'<td class="failure">incomplete<ul>{why}</ul></td>')
    cells.append("</tr>")
    return "".join(cells)


def _sheet(job: JobFolder, thumbs: dict[str, str]) -> str:
    if not job.rows:
        return '<p class="note">No layer captured yet.</p>'
    head = "".join(f"<th>{escape(_column_title(job, c, i))}</th>" for c, i in job.columns)
    failed = any(not r.complete for r in job.rows)
    rows = "".join(_row(job, r, thumbs) for r in job.rows)
    extra = "<th>failure</th>" if failed else ""
    return f'<table class="sheet"><thead><tr><th>layer</th>{head}{extra}</tr></thead><tbody>{rows}</tbody></table>'


def _videos(videos: list[Video], final: bool, note: str | None) -> str:
    if note:
        return f'<p class="note">{escape(note)}</p>'
    if not final:
        return '<p class="note">The timelapse videos are encoded when the job ends.</p>'
    if not videos:
        return '<p class="note">No timelapse: no images.</p>'
    out = ['<div class="videos">']
    for v in videos:
        poster = f' poster="{href(v.poster)}"' if v.poster else ""
        caption = f"pos {v.index:02d} · {v.camera} · {v.frames} frames"
        video = f'<video class="timelapse" src="{href(v.href)}"{poster} controls loop muted preload="auto"></video>'
        out.append(f"<figure>{video}<figcaption>{escape(caption)}</figcaption></figure>")
    out.append("</div>")
    return "".join(out)


def render(
    job: JobFolder, thumbs: dict[str, str], videos: list[Video], final: bool, now: float, note: str | None = None
) -> str:
    state = "final" if final else "running"
    refresh = "" if final else f'<meta http-equiv="refresh" content="{REFRESH_S}">'
    title = f"{job.gcode_file or job.name} · {job.printer or ''}".strip(" ·")
    rows = job.rows
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{refresh}'
        f'<meta name="{STATE_META}" content="{state}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><link rel="stylesheet" href="page/style.css"></head><body>'
        f'<h1>{escape(title)} <span class="state {state}">{"done" if final else "printing"}</span></h1>'
        f'<p class="note">Job folder {escape(job.name)}.</p>'
        f'<section id="summary"><h2>Summary</h2>{_summary(job, final, now)}</section>'
        f'<section id="timelapse"><h2>Timelapse</h2>{_videos(videos, final, note)}</section>'
        f'<section id="watch"><h2>Print watch</h2>{page_watch.section(rows)}</section>'
        f'<section id="plots"><h2>Timing</h2><h3>Printing time per layer, between holds</h3>'
        f"{page_svg.layer_plot(rows, job.started)}<h3>Each hold's time split</h3>"
        f"{page_svg.hold_plot(rows)}{page_svg.legend()}</section>"
        f'<section id="contact-sheet"><h2>Contact sheet</h2>{_sheet(job, thumbs)}</section>'
        "</body></html>\n"
    )
