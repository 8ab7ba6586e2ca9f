"""Names that cannot escape or overflow, end to end (issue 13): a real OctoPrint prints the
e2e file under hostile names, with the synthetic camera and the coordinator.

Before, a G-code file with a 240-character stem printed with every capture lost: the job
folder's name (the file's stem plus the start time) was longer than the 255 bytes a file
system allows. Now the folder name is shortened with a digest, every image lands inside
``captures_dir`` with all its layers, and the name as OctoPrint gave it is kept in every
layer's metadata and in the job summary. A second print, in the same mesh, is uploaded
under a path trick: dots, an escaped separator and non-ASCII letters in a name of exactly
255 bytes (``../../x.gcode`` is refused by OctoPrint's upload: checked too).
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
from printing import FAST, printable
from test_capture_e2e import (  # the rig fixture and its helpers: the same mesh as the e2e tests
    BASE,
    COORD,
    FILE,
    PLANNED,
    PRINTER,
    Rig,
    check_serial_log,
    layer_files,
    rig,  # noqa: F401
)

from printmesh_core.models.coordinator import JobSummary

LONG = "sample-box_" + "x" * 229 + ".gcode"  # a 240-character stem: 246 characters
TRICK = "..%2F..%2F" + "é" * 118 + "..a.gcode"  # 255 bytes: dots, an escaped separator, non-ASCII
assert len(LONG) == 246 and len(TRICK.encode()) == 255


def print_as(r: Rig, name: str, timeout: float = 240) -> tuple[bytes, JobSummary, str]:
    """Upload and print the e2e file under ``name``; the summary and the name OctoPrint used."""
    data = printable(FILE)
    r.observer.topic(f"{BASE}/hold", where=lambda d: d["armed"] is not None, timeout=30)
    r.octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    mark = r.observer.mark()
    r.octoprint.upload(name, data)
    held = r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "held", timeout=60)
    r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=timeout)
    summary = r.observer.topic(
        f"printmesh/{COORD}/coordinator/{PRINTER}/summary",
        after=mark,
        where=lambda d: d["outcome"] == "done",
        timeout=30,
    )
    return data, JobSummary.model_validate(summary), held["payload"]["path"]


def every_file(root: Path) -> list[Path]:
    return [Path(folder) / f for folder, _, files in os.walk(root, followlinks=False) for f in files]


def check_job(r: Rig, summary: JobSummary, gcode_name: str) -> None:
    assert summary.outcome == "done" and summary.layers_captured == PLANNED and not summary.failures, summary
    assert summary.images == 9 * len(PLANNED) and summary.gcode_file == gcode_name
    folder = r.captures / PRINTER / summary.job
    assert folder.is_dir() and len(summary.job.encode()) <= 89, summary.job
    layers = layer_files(r, summary)
    assert sorted(layers) == PLANNED
    for meta in layers.values():
        assert meta.complete and meta.gcode_file == gcode_name and len(meta.images) == 9
        for image in meta.images:
            path = (r.captures / image.path).resolve()
            assert path.is_relative_to(folder.resolve()) and path.read_bytes()[:2] == b"\xff\xd8", image.path


def test_a_240_character_name_and_path_tricks_lose_no_capture(rig):  # noqa: F811
    r = rig()
    data, summary, long_name = print_as(r, LONG)
    assert long_name.endswith("x" * 200 + ".gcode") and len(long_name) >= 246, long_name
    check_job(r, summary, long_name)
    check_serial_log(r.octoprint.serial_log(), data)

    _, second, trick_name = print_as(r, TRICK)
    assert "/" not in second.job and not second.job.startswith(".") and second.job != summary.job
    check_job(r, second, trick_name)

    # OctoPrint itself refuses this one at upload; a 'held' event naming it anyway (a hostile
    # or buggy publisher) gets a plain folder from the coordinator (tests/unit/test_names.py)
    with pytest.raises(urllib.error.HTTPError) as refused:
        r.octoprint.upload("../../x.gcode", printable(FILE), print_now=False)
    assert refused.value.code == 400

    root = r.captures.resolve()
    files = every_file(r.captures)
    assert all(f.resolve().is_relative_to(root) for f in files)
    images = [f for f in files if f.parent.parent == r.captures / PRINTER and f.suffix == ".jpg"]
    assert len(images) == 2 * 9 * len(PLANNED), images
    jobs = sorted([summary.job, second.job])
    assert sorted(p.name for p in (r.captures / PRINTER).iterdir()) == jobs
