"""A job folder read back from disk: the layers' metadata, the summary, and safe file names.

The page and the timelapse are built from the folder alone (so ``--render`` works on a copy
of it), and every name taken from a metadata file is reduced to a plain name inside the
folder: a crafted or damaged file can make a cell empty, never make us read or link
anything outside the job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from printmesh_coordinator.store import write_atomically
from printmesh_core import contract
from printmesh_core.models.coordinator import CaptureFailure, HoldTimings, JobSummary, LayerCapture
from printmesh_core.models.watch import WatchVerdict

log = logging.getLogger("printmesh.coordinator.page")

METADATA_GLOB = "layer_*_metadata_*.json"
SUMMARY_NAME = "job_summary.json"
OUTLINES_NAME = "outlines.json"  # the file's layer outlines as the bridge sent them: what --calibrate reads
MODE = 0o644  # the page is meant to be served: readable by a web server's user (mkstemp makes 0600)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_PARSED: dict[Path, tuple[tuple[int, int], LayerCapture]] = {}  # metadata files seen, by (mtime, size)
PARSED_MAX = 4096


@dataclass(frozen=True)
class Shot:
    """One image of a layer, by its plain file name in the job folder."""

    name: str
    camera: str
    index: int
    sha256: str


@dataclass(frozen=True)
class Row:
    """One held layer (one metadata file)."""

    layer: int
    z: float | None
    started: float
    complete: bool
    shots: dict[tuple[str, int], Shot]
    failures: list[CaptureFailure]
    timings: HoldTimings
    watch: WatchVerdict | None = None  # the print watch's verdict (its sidecar), once judged


@dataclass
class JobFolder:
    folder: Path
    rows: list[Row] = field(default_factory=list)
    columns: list[tuple[str, int]] = field(default_factory=list)  # (camera, grid index), capture order
    summary: JobSummary | None = None
    gcode_file: str | None = None
    printer: str | None = None
    started: float | None = None
    unreadable: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.folder.name


def plain_files(folder: Path) -> set[str]:
    """Names of the regular files directly in ``folder`` (symbolic links left out: they may point anywhere)."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.is_file(follow_symlinks=False)}
    except OSError:
        return set()


def safe_name(folder: Path, path: str, files: set[str] | None = None) -> str | None:
    """The plain name of ``path`` when it is a regular file directly inside ``folder``; else None."""
    name = PurePosixPath(path.replace("\\", "/")).name
    if not name or name.startswith(".") or "\x00" in name:
        return None
    return name if name in (plain_files(folder) if files is None else files) else None


def file_tag(text: str) -> str:
    """A camera name made safe for a file name (it came from a metadata file)."""
    return _UNSAFE.sub("_", text).strip("._") or "camera"


def layer_metadata(file: Path) -> LayerCapture:
    """Parsed once per version of the file: the per-layer update re-reads every layer's metadata."""
    st = file.stat()
    key = (st.st_mtime_ns, st.st_size)
    seen = _PARSED.get(file)
    if seen is not None and seen[0] == key:
        return seen[1]
    md = LayerCapture.model_validate_json(file.read_bytes())
    if len(_PARSED) >= PARSED_MAX:
        _PARSED.clear()
    _PARSED[file] = (key, md)
    return md


def _verdict(file: Path, files: set[str]) -> WatchVerdict | None:
    """The layer's watch sidecar (``layer_0015_watch_<time>.json``), if it is there and readable; read
    like a message (``contract.read``): a newer coordinator sharing the folder may write fields this one
    does not know (``agreement`` was one)."""
    if file.name not in files:
        return None
    try:
        return contract.read(WatchVerdict, file.read_bytes())
    except (OSError, contract.Unreadable) as exc:
        log.warning("page: skipping unreadable watch verdict %s: %s", file, exc)
        return None


def read_job(folder: Path) -> JobFolder:
    job = JobFolder(folder)
    files = plain_files(folder)
    metas: list[LayerCapture] = []
    verdicts: dict[int, WatchVerdict] = {}
    for file in sorted(folder.glob(METADATA_GLOB)):
        verdict = _verdict(folder / file.name.replace("_metadata_", "_watch_", 1), files)
        try:
            metas.append(layer_metadata(file))
            if verdict is not None:
                verdicts[id(metas[-1])] = verdict
        except (OSError, ValidationError) as exc:
            log.warning("page: skipping unreadable metadata %s: %s", file, exc)
            job.unreadable.append(file.name)
    with contextlib.suppress(OSError, ValidationError):
        job.summary = JobSummary.model_validate_json((folder / SUMMARY_NAME).read_bytes())
    columns: set[tuple[str, int]] = set()
    order: dict[str, int] = {}
    for md in sorted(metas, key=lambda m: (m.layer, m.timestamp)):
        for pos, cam in enumerate(md.settings.cameras):
            order.setdefault(cam, pos)
            columns.update((cam, i) for i in range(md.settings.points))
        shots: dict[tuple[str, int], Shot] = {}
        for image in md.images:
            name = safe_name(folder, image.path, files)
            if name is None:
                log.warning("page: %s: image %r is not a file of this folder", folder, image.path)
                continue
            shots[(image.camera, image.index)] = Shot(name, image.camera, image.index, image.sha256)
            order.setdefault(image.camera, len(order))
            columns.add((image.camera, image.index))
        watch = verdicts.get(id(md))
        job.rows.append(Row(md.layer, md.z_height, md.timestamp, md.complete, shots, md.failures, md.timings, watch))
        job.gcode_file = job.gcode_file or md.gcode_file
        job.printer = job.printer or md.printer
        job.started = job.started or md.print_start_time
    job.columns = sorted(columns, key=lambda c: (order.get(c[0], 0), c[0], c[1]))
    if job.summary is not None:
        job.gcode_file = job.summary.gcode_file or job.gcode_file
        job.printer = job.summary.printer
        job.started = job.summary.print_start_time or job.started
    return job


def atomic_write(target: Path, data: bytes) -> None:
    """Temporary hidden file in the same folder, then rename: a watcher sees all or nothing."""
    write_atomically(target, data, MODE, suffix=".tmp")
