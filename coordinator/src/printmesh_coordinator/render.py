"""``printmesh coordinator --render JOB_DIR``: rebuild a job's page and timelapse from its folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from printmesh_coordinator.job_folder import METADATA_GLOB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JOB_DIR",
        help="Rebuild the job page (index.html, thumbnails) and the timelapse videos of one job folder "
        "(<captures_dir>/<printer>/<job>) from its files alone, print the page's path and exit.",
    )


def run_tool(args: argparse.Namespace) -> int | None:
    folder: Path | None = getattr(args, "render", None)
    if folder is None:
        return None
    if getattr(args, "preview", False):
        print("printmesh coordinator: give either --render or --preview", file=sys.stderr)
        return 2
    if not folder.is_dir():
        print(f"printmesh coordinator: --render: {folder} is not a folder", file=sys.stderr)
        return 2
    if not any(folder.glob(METADATA_GLOB)):
        print(f"printmesh coordinator: --render: no {METADATA_GLOB} in {folder}: not a job folder", file=sys.stderr)
        return 2
    from printmesh_coordinator import page  # OpenCV: only when rendering

    try:
        built = page.build(folder.resolve(), final=True, force=True)
    except OSError as exc:
        print(f"printmesh coordinator: --render: {exc}", file=sys.stderr)
        return 1
    print(built.index, flush=True)
    if built.note:
        print(built.note, file=sys.stderr)
        return 1
    return 0
