"""The job page: ``index.html`` beside the images, with ``page/`` holding its style sheet,
thumbnails and timelapse videos. Built from the job folder alone.

``build(folder, final=False)`` is the per-layer update (thumbnails only for new images,
then the page); ``build(folder, final=True)`` also encodes the timelapse videos and
writes the page without its reload. Every file is written atomically, so a browser
reloading mid-update sees the previous page or the new one.
"""

from __future__ import annotations

import logging
import threading
import time
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np

from printmesh_coordinator import page_html, timelapse
from printmesh_coordinator.job_folder import JobFolder, atomic_write, file_tag, plain_files, read_job
from printmesh_coordinator.page_html import STATE_META, Built, Video

log = logging.getLogger("printmesh.coordinator.page")

INDEX = "index.html"
ASSETS = "page"
THUMB_SIZE = (160, 120)
THUMB_QUALITY = 75


def page_path(captures_dir: Path, printer: str, job: str) -> Path:
    """Where a job's page is (what ``printmesh up`` prints at the end)."""
    return captures_dir / printer / job / INDEX


def page_state(folder: Path) -> str:
    """'missing', 'running' (reloads itself) or 'final' (videos encoded)."""
    try:
        text = (folder / INDEX).read_text(errors="replace")
    except OSError:
        return "missing"
    return "final" if f'name="{STATE_META}" content="final"' in text else "running"


def thumbnail(source: Path, target: Path) -> bool:
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if image is None:
        return False
    h, w = image.shape[:2]
    scale = min(THUMB_SIZE[0] / w, THUMB_SIZE[1] / h, 1.0)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
    if not ok:
        return False
    atomic_write(target, np.asarray(data).tobytes())
    return True


def _thumbs(job: JobFolder, force: bool) -> tuple[dict[str, str], int]:
    """Relative thumbnail path per image name; only missing ones are made unless ``force``."""
    out: dict[str, str] = {}
    made = 0
    existing = set() if force else plain_files(job.folder / ASSETS / "thumbs")
    for row in job.rows:
        for shot in row.shots.values():
            name = f"{Path(shot.name).stem}.jpg"
            relative = f"{ASSETS}/thumbs/{name}"
            if name in existing:
                out[shot.name] = relative
            elif thumbnail(job.folder / shot.name, job.folder / relative):
                out[shot.name] = relative
                made += 1
    return out, made


def _newer(target: Path, sources: list[Path]) -> bool:
    try:
        return target.stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in sources)
    except OSError:
        return False


def encode_videos(
    job: JobFolder, thumbs: dict[str, str], stop: threading.Event | None = None, force: bool = False
) -> list[Video]:
    """One video per (camera, grid index), frames in layer order; stale videos are removed.

    A video newer than all its frames is kept as it is, unless ``force``.
    """
    folder = job.folder / ASSETS / "video"
    several = len({c for c, _ in job.columns}) > 1
    videos: list[Video] = []
    keep: set[str] = set()
    for camera, index in job.columns:
        shots = [r.shots[(camera, index)] for r in job.rows if (camera, index) in r.shots]
        frames = [job.folder / s.name for s in shots if (job.folder / s.name).is_file()]
        if not frames:
            continue
        name = f"pos_{index:02d}" + (f"_{file_tag(camera)}" if several else "")
        while f"{name}.webm" in keep:
            name += "_"
        target = folder / f"{name}.webm"
        if not force and _newer(target, frames):  # the summary may be written twice: encode once
            count = timelapse.count_frames(target)
        else:
            count = timelapse.encode(frames, target, stop)
        if count:
            keep.add(f"{name}.webm")
            poster = thumbs.get(shots[-1].name)
            videos.append(Video(f"{ASSETS}/video/{name}.webm", camera, index, count, poster))
    if folder.is_dir():
        for old in folder.glob("*.webm"):
            if old.name not in keep and not old.name.startswith("."):
                old.unlink(missing_ok=True)
    return videos


def write_assets(folder: Path) -> None:
    css = files("printmesh_coordinator").joinpath("page.css").read_bytes()
    target = folder / ASSETS / "style.css"
    if not target.exists() or target.read_bytes() != css:
        atomic_write(target, css)


def write_index(job: JobFolder, thumbs: dict[str, str], videos: list[Video], final: bool, note: str | None) -> Path:
    target = job.folder / INDEX
    html = page_html.render(job, thumbs, videos, final, time.time(), note)
    atomic_write(target, html.encode())
    return target


def build(folder: Path, final: bool = False, force: bool = False, stop: threading.Event | None = None) -> Built:
    """Write the page of the job in ``folder`` (and, when ``final``, its timelapse videos)."""
    job = read_job(folder)
    write_assets(folder)
    thumbs, made = _thumbs(job, force)
    built = Built(folder / INDEX, made)
    if final:
        try:
            built.videos = encode_videos(job, thumbs, stop, force)
        except timelapse.Aborted:
            built.note = f"Timelapse not encoded: the coordinator stopped. Run: printmesh coordinator --render {folder}"
        except (OSError, cv2.error) as exc:
            built.note = f"Timelapse not encoded: {exc}"
            log.error("%s: timelapse not encoded: %s", folder, exc)
    write_index(job, thumbs, built.videos, final, built.note)
    return built
