"""Disk full, all real: the capture print of test_capture_e2e with ``captures_dir`` on a
small tmpfs that fills during the print (issue 13).

The print must complete with every hold released; the summary must say what was lost
(per-layer failures, ENOSPC), list as orphans exactly the images on disk that no metadata
lists, and exactly one final summary message must arrive.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from printing import FAST, printable
from test_capture_e2e import BASE, COORD, FILE, PLANNED, PRINTER, check_serial_log, rig  # noqa: F401

from printmesh_core.models.coordinator import JobSummary, LayerCapture

FREE = 300_000  # bytes left free on the tmpfs: room for some images of the first layer, not all


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "captures"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        filler = mount / "filler.bin"
        total = 2 * 1024 * 1024
        filler.write_bytes(b"\0" * (total - FREE))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_releases_every_hold_and_the_summary_tells_what_was_lost(rig: Any, small_disk: Path) -> None:  # noqa: F811
    r = rig()
    assert r.captures == small_disk
    data = printable(FILE)
    mark = r.observer.mark()
    r.octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    r.octoprint.upload(f"{FILE}.gcode", data)
    r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=240)
    topic = f"printmesh/{COORD}/coordinator/{PRINTER}/summary"
    first = JobSummary.model_validate(r.observer.topic(topic, after=mark, timeout=30))
    time.sleep(5)  # room for a second summary, which must not come
    summaries = [m for m in r.observer.messages[mark:] if m.topic == topic]
    assert len(summaries) == 1, [JobSummary.model_validate_json(m.payload).outcome for m in summaries]
    s = first
    assert s.outcome == "done"
    assert r.octoprint.api("GET", "/api/job")["progress"]["completion"] == 100
    events = [m for m in r.observer.messages[mark:] if m.topic == f"{BASE}/event"]
    held = sum(1 for m in events if b'"event":"held"' in m.payload.replace(b" ", b""))
    released = sum(1 for m in events if b'"event":"released"' in m.payload.replace(b" ", b""))
    assert held == released == len(PLANNED), (held, released)
    # every planned layer is listed; those that lost anything say why (no space)
    assert [x.layer for x in s.layers] == PLANNED
    assert any(x.status != "complete" for x in s.layers), s.layers
    for x in s.layers:
        if x.status == "incomplete":
            assert x.failures and any("space" in f.message.lower() or f.code == "ENOSPC" for f in x.failures), x
    assert s.failures, "what was lost is listed"
    # orphans are exactly the images on disk that no metadata on disk lists
    folder = small_disk / PRINTER / s.job
    on_disk = {f"{PRINTER}/{s.job}/{p.name}" for p in folder.glob("*.jpg")}
    listed = {
        i.path
        for p in folder.glob("layer_*_metadata_*.json")
        for i in LayerCapture.model_validate_json(p.read_bytes()).images
    }
    published = {
        i.path
        for m in r.observer.messages[mark:]
        if m.topic == f"printmesh/{COORD}/coordinator/{PRINTER}/capture"
        for i in LayerCapture.model_validate_json(m.payload).images
    }
    assert set(s.orphans) == on_disk - listed - published
    check_serial_log(r.octoprint.serial_log(), data)
