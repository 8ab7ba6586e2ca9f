"""Files under ``captures_dir``: written atomically, and the job summary rebuilt from them.

Every file is written to a temporary name in its final folder and renamed into place, so
a reader (or a second coordinator sharing the folder) sees a whole file or none. A
failed write (a full disk above all) removes its temporary file and raises ``OSError``,
which the shell hands to the state machine as ``WriteFailed``. ``mkstemp`` makes its file
0600; the final file gets the mode an ordinary ``open`` would give it (0666 less the
umask), so a web server running as another user can serve the images the job page links.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from printmesh_coordinator import summary as rules
from printmesh_core.models.coordinator import JobSummary, LayerCapture, SummaryFailure
from printmesh_core.models.printer import HoldPlan

log = logging.getLogger("printmesh.coordinator.store")

SUMMARY_NAME = "job_summary.json"
METADATA_GLOB = "layer_*_metadata_*.json"
FOLDERS_KEPT = 256  # job folders whose resolved path is remembered (a farm's running jobs, and some)


def _umask() -> int:
    """The process umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_atomically(
    target: Path, data: bytes, mode: int, fsync: bool = False, suffix: str = ".part", folder_made: bool = False
) -> None:
    """``data`` to a hidden temporary file in ``target``'s folder, then renamed over ``target``."""
    if not folder_made:
        target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    try:
        try:
            _write_fully(fd, data)
            os.fchmod(fd, mode)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_relative(relative: str, where: str = "captures_dir") -> None:
    """Every part of a store key a plain name (no '', '.', '..', backslash or NUL): the same rule
    for a file below captures_dir and an object key below the bucket's prefix."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise OSError(f"refusing to write outside {where}: {relative[:200]!r} is not all plain names")


class Store:
    """The local disk backend (``store.type: local``): files below ``captures_dir``."""

    remote = False  # writes are quick and local: the loop makes them itself

    def __init__(self, root: Path, fsync: bool = False) -> None:
        self.root = root
        self.fsync = fsync
        self.mode = 0o666 & ~_umask()  # read once: reading the umask briefly changes it for every thread
        self._root: Path | None = None
        self._folders: dict[str, Path] = {}  # job folder (relative) -> resolved, checked and made

    def path(self, relative: str) -> Path:
        """``captures_dir/relative``, proven inside ``captures_dir``: every part a plain name
        (no '', '.', '..', backslash or NUL), and the resolved path (symbolic links followed)
        below the resolved root."""
        check_relative(relative)
        root = self.root.resolve()
        target = (root / relative).resolve()
        if target == root or not target.is_relative_to(root):
            raise OSError(f"refusing to write outside captures_dir: {relative[:200]!r}")
        return target

    def write(self, relative: str, data: bytes) -> Path:
        """Write ``data`` to ``captures_dir/relative`` atomically (temporary file, then rename).

        The loop writes every image of every hold, so the folder is resolved, checked and made
        once per job, not per file (``realpath`` walks every level). The file's own name needs
        no resolving: a rename replaces a symbolic link planted there, it never follows it. A
        folder removed meanwhile is made again."""
        check_relative(relative)
        folder, _, name = relative.rpartition("/")
        try:
            target = self._folder(folder) / name
            write_atomically(target, data, self.mode, fsync=self.fsync, folder_made=True)
        except FileNotFoundError:  # the folder was removed meanwhile: resolve and make it again
            self._folders.pop(folder, None)
            target = self._folder(folder) / name
            write_atomically(target, data, self.mode, fsync=self.fsync, folder_made=True)
        return target

    def _folder(self, folder: str) -> Path:
        known = self._folders.get(folder)
        if known is not None:
            return known
        if self._root is None:
            self._root = self.root.resolve()
        resolved = (self._root / folder).resolve() if folder else self._root
        if not resolved.is_relative_to(self._root):
            raise OSError(f"refusing to write outside captures_dir: {folder[:200]!r}")
        resolved.mkdir(parents=True, exist_ok=True)
        if len(self._folders) >= FOLDERS_KEPT:
            self._folders.pop(next(iter(self._folders)))
        self._folders[folder] = resolved
        return resolved

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()

    def write_json(self, relative: str, body: str) -> Path:
        return self.write(relative, (body + "\n").encode())

    def summary(
        self,
        printer: str,
        job: str,
        outcome: str,
        gcode_file: str | None,
        print_start_time: float | None,
        now: float,
        published: list[LayerCapture] | None = None,
        plan: HoldPlan | None = None,
        total_layers: int | None = None,
    ) -> JobSummary | None:
        """The job's summary from every layer metadata file in its folder; None without a folder.

        Built from the folder rather than from memory, so it is complete when several
        coordinators shared the job's holds. A known outcome already on disk is kept when
        this coordinator only knows the print stopped ('unknown'). ``published`` adds the
        metadata this coordinator published but could not write (a full disk); every
        layer ``plan`` would hold up to ``total_layers`` (when unknown: up to the last layer
        with metadata) is listed, ``missed``/``not_held`` if it has none.
        Images in the folder that no metadata lists are the summary's ``orphans``.
        """
        folder = self.path(f"{printer}/{job}")
        if not folder.is_dir():
            return None
        layers = self.layers(printer, job)
        files = [f.name for f in folder.iterdir() if f.is_file()]
        previous: str | None = None
        if outcome == "unknown":
            with contextlib.suppress(OSError, ValueError):
                previous = str(json.loads((folder / SUMMARY_NAME).read_text()).get("outcome") or "") or None
        return assemble(printer, job, outcome, previous, gcode_file, print_start_time, now, layers, files,
                        published, plan, total_layers)  # fmt: skip

    def layers(self, printer: str, job: str) -> list[LayerCapture]:
        """Every readable layer metadata file in the job's folder (none without a folder), in name order."""
        folder = self.path(f"{printer}/{job}")
        layers: list[LayerCapture] = []
        for file in sorted(folder.glob(METADATA_GLOB)) if folder.is_dir() else []:
            try:
                layers.append(LayerCapture.model_validate_json(file.read_bytes()))
            except (OSError, ValidationError) as exc:
                log.warning("skipping unreadable metadata %s: %s", file, exc)
        return layers

    @property
    def where(self) -> str:
        return str(self.root)

    def page_folder(self, printer: str, job: str) -> Path:
        """The folder the job page is built in: the job's own folder."""
        return self.path(f"{printer}/{job}")


def assemble(
    printer: str,
    job: str,
    outcome: str,
    stored_outcome: str | None,
    gcode_file: str | None,
    print_start_time: float | None,
    now: float,
    layers: list[LayerCapture],
    files: list[str],
    published: list[LayerCapture] | None,
    plan: HoldPlan | None,
    total_layers: int | None,
) -> JobSummary:
    """The summary from what a job folder holds (its layers' metadata, its file names and the
    outcome of the summary already there), whichever store it was read from."""
    layers = rules.merge(layers, published or [])
    if outcome == "unknown" and stored_outcome:
        outcome = stored_outcome
    failures = [SummaryFailure(layer=md.layer, **f.model_dump()) for md in layers for f in md.failures]
    if gcode_file is None:
        gcode_file = next((m.gcode_file for m in layers if m.gcode_file), None)
    if print_start_time is None:
        print_start_time = next((m.print_start_time for m in layers if m.print_start_time), None)
    return JobSummary(
        printer=printer,
        job=job,
        gcode_file=gcode_file,
        print_start_time=print_start_time,
        ended_at=round(now, 3),
        outcome=outcome,
        layers_captured=sorted({md.layer for md in layers if md.images}),
        layers_held=sorted({md.layer for md in layers}),
        images=sum(len(md.images) for md in layers),
        failures=failures,
        total_hold_time=round(sum(md.timings.hold_duration for md in layers), 3),
        coordinators=sorted({md.coordinator for md in layers}),
        layers=rules.layers(layers, rules.planned_layers(plan, last_planned(outcome, total_layers, layers))),
        orphans=rules.orphans(files, layers, f"{printer}/{job}"),
    )


def last_planned(outcome: str, total_layers: int | None, layers: list[LayerCapture]) -> int:
    """Up to the file's last layer for a print that finished; a cancelled or failed one never
    reached the layers after it stopped, so those are not missed: up to the last one recorded."""
    recorded = max((m.layer for m in layers), default=0)
    return max(recorded, total_layers or 0) if outcome == "done" else recorded
