"""``printmesh coordinator --calibrate JOB_DIR [--outlines FILE]``: fit each head camera's geometry to a job.

A real carriage camera's geometry is measured by hand, and the print watch's silhouette is only as
good as it (``docs/watch.md``). This reads a finished job's captures and the file's outlines (the
bridge's ``<printer>/printer/outlines``, which the coordinator keeps in the job folder), fits the geometry
(``watch/calibrate.py``) and prints it as the camera agent's config wants it. Layers from the
first one the watch flagged onwards are left out: a failed print does not match its G-code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from printmesh_coordinator.job_folder import (
    METADATA_GLOB,
    OUTLINES_NAME,
    layer_metadata,
    plain_files,
    read_job,
    safe_name,
)
from printmesh_coordinator.watch_scene import CameraModel, Outline, camera_model, outlines_of
from printmesh_core import contract
from printmesh_core.inbound import LAYERS_LIMIT
from printmesh_core.models.coordinator import CapturedImage
from printmesh_core.models.layers import LayerOutline, LayerOutlines

if TYPE_CHECKING:
    from printmesh_coordinator.watch.calibrate import View

T = TypeVar("T")
MAX_VIEWS = 36  # images per camera, spread over the job's layers: about 10 s of fitting
DEFAULT = CameraModel((0.0, -55.0, 45.0), 45.0, 90.0)  # the virtual head camera's, when the job recorded none


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calibrate",
        type=Path,
        metavar="JOB_DIR",
        help="Fit each head camera's geometry (offset, pitch, fov) to the captures of one clean job folder and "
        "print it for the camera's config.",
    )
    parser.add_argument(
        "--outlines",
        type=Path,
        metavar="FILE",
        help="With --calibrate: the job's file outlines, as the bridge publishes them on <printer>/printer/outlines "
        "(default: the job folder's outlines.json, kept there by the coordinator when the watch is on).",
    )


def run_tool(args: argparse.Namespace) -> int | None:
    folder: Path | None = getattr(args, "calibrate", None)
    outlines_file: Path | None = getattr(args, "outlines", None)
    if folder is None:
        if outlines_file is not None:
            print("printmesh coordinator: --outlines only goes with --calibrate", file=sys.stderr)
            return 2
        return None
    if not folder.is_dir() or not any(folder.glob(METADATA_GLOB)):
        print(f"printmesh coordinator: --calibrate: {folder} is not a job folder (no {METADATA_GLOB})", file=sys.stderr)
        return 2
    if outlines_file is None:
        outlines_file = folder / OUTLINES_NAME
        if not outlines_file.is_file():
            print(f"printmesh coordinator: --calibrate: no {OUTLINES_NAME} in {folder} (the coordinator keeps the "
                  "bridge's outlines there when the watch is on): give --outlines FILE", file=sys.stderr)  # fmt: skip
            return 2
    try:
        outlines = contract.read(LayerOutlines, outlines_file.read_bytes(), LAYERS_LIMIT)  # as the bridge sent it
    except (OSError, contract.Unreadable) as exc:
        print(f"printmesh coordinator: --outlines: {outlines_file}: {exc}", file=sys.stderr)
        return 2
    return calibrate(folder, outlines)


def calibrate(folder: Path, outlines: LayerOutlines) -> int:
    from printmesh_coordinator.watch.calibrate import fit  # numpy and OpenCV: only when calibrating

    job = read_job(folder)
    flagged = [r.layer for r in job.rows if r.watch is not None and r.watch.verdict != "ok"]
    last = min(flagged) if flagged else None
    views = _views(folder, outlines.outlines, last)
    if not views:
        print("printmesh coordinator: --calibrate: no image has printed layers before it", file=sys.stderr)
        return 1
    if job.gcode_file and outlines.path and outlines.path != job.gcode_file:
        print(f"warning: the outlines are of {outlines.path!r}, the job printed {job.gcode_file!r}", file=sys.stderr)
    status = 0
    for camera, (start, camera_views) in sorted(views.items()):
        try:
            result = fit(camera_views, start)
        except ValueError as exc:
            print(f"camera {camera}: not fitted: {exc}")
            status = 1
            continue
        print(f"camera {camera}: {result.views} images" + (f", layers before {last} (flagged)" if last else ""))
        print(f"  recorded: {_describe(result.start)}  agreement {result.start_agreement:.3f}")
        print(f"  fitted:   {_describe(result.camera)}  agreement {result.agreement:.3f}")
        c = result.camera
        print("  geometry:")
        print(f"    offset: [{c.offset[0]:g}, {c.offset[1]:g}, {c.offset[2]:g}]")
        print(f"    pitch: {c.pitch:g}")
        print(f"    fov: {c.fov:g}")
    return status


def _describe(c: CameraModel) -> str:
    return f"offset [{', '.join(f'{v:g}' for v in c.offset)}], pitch {c.pitch:g}, fov {c.fov:g}"


def _spread(items: Sequence[T]) -> list[T]:
    """At most ``MAX_VIEWS``, evenly over the job (the items come in layer order)."""
    if len(items) <= MAX_VIEWS:
        return list(items)
    step = len(items) / MAX_VIEWS
    return [items[int(i * step)] for i in range(MAX_VIEWS)]


Views = dict[str, tuple[CameraModel, list["View"]]]
Candidate = tuple[str, CapturedImage, tuple[Outline, ...]]  # file name, its record, the layers printed before it


def _candidates(folder: Path, layers: Sequence[LayerOutline], before: int | None) -> dict[str, list[Candidate]]:
    """Per camera, in layer order: the images with printed layers before them, not yet read."""
    ordered = sorted(layers, key=lambda o: o.layer)
    converted = outlines_of(ordered)
    files = plain_files(folder)
    metas = []
    for file in sorted(folder.glob(METADATA_GLOB)):
        try:
            metas.append(layer_metadata(file))  # parsed once: read_job has just read them
        except (OSError, ValidationError) as exc:
            print(f"warning: skipping {file.name}: {exc}", file=sys.stderr)
    out: dict[str, list[Candidate]] = {}
    for md in sorted(metas, key=lambda m: m.layer):
        printed = tuple(o for o, m in zip(converted, ordered, strict=True) if m.layer < md.layer)
        if not printed or (before is not None and md.layer >= before):
            continue
        for image in sorted(md.images, key=lambda i: (i.camera, i.index)):
            name = safe_name(folder, image.path, files)
            if name is not None:
                out.setdefault(image.camera, []).append((name, image, printed))
    return out


def _views(folder: Path, layers: Sequence[LayerOutline], before: int | None) -> Views:
    """Per camera: the geometry its captures recorded (else ``DEFAULT``), and up to ``MAX_VIEWS`` views."""
    from printmesh_coordinator.watch.calibrate import View
    from printmesh_coordinator.watch.frames import decode, prepare

    out: Views = {}
    for camera, candidates in _candidates(folder, layers, before).items():
        for name, image, printed in _spread(candidates):
            try:
                small, full = decode((folder / name).read_bytes())
            except (OSError, ValueError) as exc:
                print(f"warning: skipping {name}: {exc}", file=sys.stderr)
                continue
            start = camera_model(image.geometry) if image.geometry else DEFAULT
            head = (image.position.x, image.position.y, image.z)
            out.setdefault(camera, (start, []))[1].append(View(prepare(small, full).part, full, head, printed))
    return out
