"""The bridge's outline scan in a child process, kept on disk: the same outlines, never scanned twice.

The plugin's scanner runs ``python -m octoprint_printmesh.outline_process`` (a real child
process) so a print starting never shares OctoPrint's GIL with the scan; the result is kept in
the plugin's data folder for that version of the file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from virtual_camera_support import SAMPLE

from octoprint_printmesh import outline_scan
from octoprint_printmesh.layers.outline import scan_outlines
from octoprint_printmesh.layers.scanner import scan_file
from octoprint_printmesh.outline_scan import OutlineScanner
from printmesh_core.models.layers import LayerOutlines


@pytest.fixture
def gcode(tmp_path: Path) -> Path:
    copy = tmp_path / "box.gcode"
    shutil.copy(SAMPLE, copy)
    return copy


def expected(path: Path) -> list[object]:
    table = scan_file(str(path)).table
    with open(path, "rb") as f:
        return list(scan_outlines(f, table))


def test_the_child_gives_the_same_outlines_and_a_restart_reads_them_from_disk(
    gcode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data" / "outlines"
    table = scan_file(str(gcode)).table.model_copy(update={"path": "box.gcode"})
    first = OutlineScanner(lambda o: None, folder).outlines("box.gcode", str(gcode), table, "marlin")
    assert first is not None and first.path == "box.gcode" and first.file_size == gcode.stat().st_size
    assert first.outlines == expected(gcode)
    assert len(list(folder.glob("*.json"))) == 1

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("scanned again")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    again = OutlineScanner(lambda o: None, folder).outlines("renamed.gcode", str(gcode), table, "marlin")
    assert again is not None and again.outlines == first.outlines and again.path == "renamed.gcode"


def test_a_rewritten_file_is_scanned_again(gcode: Path, tmp_path: Path) -> None:
    folder = tmp_path / "outlines"
    scanner = OutlineScanner(lambda o: None, folder)
    table = scan_file(str(gcode)).table
    before = scanner.outlines("box.gcode", str(gcode), table, "marlin")
    text = gcode.read_text().splitlines()
    cut = next(i for i, line in enumerate(text) if line.startswith(";LAYER_CHANGE") and i > len(text) // 2)
    gcode.write_text("\n".join(text[:cut]) + "\n")  # the upper half of the box gone
    os.utime(gcode, ns=(1, 1))
    table = scan_file(str(gcode)).table
    after = scanner.outlines("box.gcode", str(gcode), table, "marlin")
    assert before is not None and after is not None and len(after.outlines) < len(before.outlines)
    assert after.outlines == expected(gcode) and len(list(folder.glob("*.json"))) == 2


def test_a_failing_child_is_logged_and_the_watch_goes_without(
    gcode: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = scan_file(str(gcode)).table
    folder = tmp_path / "outlines"
    scanner = OutlineScanner(lambda o: None, folder)
    with caplog.at_level(logging.WARNING, logger="octoprint.plugins.printmesh.layers"):
        result = scanner._scan_in_child(str(tmp_path / "gone.gcode"), "marlin", table, folder / "x.json")
    assert result is None
    assert "the outline scan failed (exit 1)" in caplog.text and "gone.gcode" in caplog.text


def test_the_child_refuses_bad_arguments() -> None:
    run = [sys.executable, "-m", "octoprint_printmesh.outline_process"]
    usage = subprocess.run(run, capture_output=True, text=True, input="")
    assert usage.returncode == 2 and "usage:" in usage.stderr
    flavour = subprocess.run([*run, str(SAMPLE), "reprap", "/dev/null"], capture_output=True, text=True, input="")
    assert flavour.returncode == 2 and "unknown flavour 'reprap'" in flavour.stderr


def test_only_the_newest_files_stay_on_disk(gcode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "outlines"
    folder.mkdir()
    for n in range(5):
        old = folder / f"old{n}.json"
        old.write_text("{}")
        os.utime(old, ns=(n + 1, n + 1))
    monkeypatch.setattr(outline_scan, "KEEP_ON_DISK", 3)
    scanner = OutlineScanner(lambda o: None, folder)
    assert scanner.outlines("box.gcode", str(gcode), scan_file(str(gcode)).table, "marlin") is not None
    names = {f.name for f in folder.glob("*.json")}
    assert len(names) == 3 and {"old3.json", "old4.json"} < names  # the three newest: the scan's own and two


def test_a_print_request_delivers_from_the_scanners_thread(gcode: Path, tmp_path: Path) -> None:
    got: list[LayerOutlines] = []
    done = threading.Event()
    scanner = OutlineScanner(lambda o: (got.append(o), done.set()), tmp_path / "outlines")
    scanner.start()
    try:
        scanner.request("box.gcode", str(gcode), scan_file(str(gcode)).table, "marlin", deliver=True)
        assert done.wait(30)
    finally:
        scanner.stop()
    assert got[0].outlines == expected(gcode)


def test_a_kept_file_is_read_like_a_message_and_a_damaged_one_is_scanned_again(
    gcode: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "outlines"
    table = scan_file(str(gcode)).table
    first = OutlineScanner(lambda o: None, folder).outlines("box.gcode", str(gcode), table, "marlin")
    assert first is not None
    (kept,) = folder.glob("*.json")
    body = json.loads(kept.read_text())
    body["newer_field"] = {"nested": [1, 2]}  # written by a newer plugin: ignored
    body["outlines"][0]["newer"] = True
    kept.write_text(json.dumps(body))
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("scanned again"))
    again = OutlineScanner(lambda o: None, folder).outlines("box.gcode", str(gcode), table, "marlin")
    assert again is not None and again.outlines == first.outlines
    monkeypatch.setattr(subprocess, "Popen", real_popen)
    kept.write_text(kept.read_text().replace('"z":', '"z":NaN,"old_z":', 1))  # a non-finite number: refused
    rescanned = OutlineScanner(lambda o: None, folder).outlines("box.gcode", str(gcode), table, "marlin")
    assert rescanned is not None and rescanned.outlines == first.outlines
    assert "NaN" not in kept.read_text()
