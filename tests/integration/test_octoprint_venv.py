"""scripts/check-octoprint-venv.sh: printmesh installs into OctoPrint's venv without changing it.

The slow test runs the whole script for real (fresh venv, OctoPrint from the index, our two
distributions, pip check, plugin discovery and a headless OctoPrint). The fast tests feed the
script's comparison step made-up `pip list --format=json` records, to show that it does fail
when a pre-existing package (psutil in particular) changes or an unexpected one appears.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check-octoprint-venv.sh"

# A cut-down OctoPrint venv as `pip list --format=json` reports it (names as pip spells them).
BEFORE = {
    "OctoPrint": "1.11.8",
    "psutil": "6.1.1",
    "packaging": "24.2",
    "pydantic": "2.14.3",
    "pydantic_core": "2.50.4",
    "PyYAML": "6.0.3",
    "typing_extensions": "4.16.0",
    "typing-inspection": "0.4.5",
}
OURS = {
    "printmesh-core": "0.1.0",
    "printmesh-octoprint": "0.1.0",
    "paho-mqtt": "2.2.0",
}


def watched_versions(output: str, name: str) -> tuple[str, str]:
    match = re.search(rf"^\s*{re.escape(name)}: before=(\S+) after=(\S+)", output, re.MULTILINE)
    assert match, f"the script's output does not report {name}:\n{output}"
    return match.group(1), match.group(2)


def run_compare(tmp_path: Path, before: dict[str, str], after: dict[str, str]) -> subprocess.CompletedProcess[str]:
    paths = []
    for label, packages in (("before", before), ("after", after)):
        path = tmp_path / f"list-{label}.json"
        path.write_text(json.dumps([{"name": n, "version": v} for n, v in packages.items()]))
        paths.append(str(path))
    return subprocess.run(
        ["bash", str(SCRIPT), "--compare", *paths], capture_output=True, text=True, timeout=60, check=False
    )


def test_compare_accepts_only_expected_additions(tmp_path: Path) -> None:
    proc = run_compare(tmp_path, BEFORE, {**BEFORE, **OURS})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert watched_versions(proc.stdout, "psutil") == ("6.1.1", "6.1.1")
    assert watched_versions(proc.stdout, "packaging") == ("24.2", "24.2")
    assert "added printmesh-octoprint 0.1.0" in proc.stdout


def test_compare_fails_when_psutil_changes(tmp_path: Path) -> None:
    proc = run_compare(tmp_path, BEFORE, {**BEFORE, **OURS, "psutil": "7.0.0"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert watched_versions(proc.stdout, "psutil") == ("6.1.1", "7.0.0")
    assert "CHANGED psutil: 6.1.1 -> 7.0.0" in proc.stdout


def test_compare_fails_on_any_version_change(tmp_path: Path) -> None:
    # Spelled differently (pydantic-core vs pydantic_core) but the same distribution.
    after = {k: v for k, v in BEFORE.items() if k != "pydantic_core"} | OURS | {"pydantic-core": "2.51.0"}
    proc = run_compare(tmp_path, BEFORE, after)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "CHANGED pydantic-core: 2.50.4 -> 2.51.0" in proc.stdout


def test_compare_fails_on_unexpected_or_removed_packages(tmp_path: Path) -> None:
    proc = run_compare(tmp_path, BEFORE, {**BEFORE, **OURS, "requests": "2.32.3"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "UNEXPECTED requests 2.32.3" in proc.stdout

    after = {k: v for k, v in BEFORE.items() if k != "packaging"} | OURS
    proc = run_compare(tmp_path, BEFORE, after)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REMOVED packaging 24.2" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_printmesh_leaves_octoprint_venv_unchanged(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), str(venv)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=1100,
            check=False,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output
        for name in ("psutil", "packaging"):
            before, after = watched_versions(proc.stdout, name)
            assert before == after, f"{name} changed {before} -> {after}:\n{output}"
            assert before != "MISSING", output
        assert "No broken requirements found." in proc.stdout, output
        assert re.search(r"^\|\s+printmesh \(0\.1\.0\)", proc.stdout, re.MULTILINE), output
        assert "octoprint.plugins.printmesh - INFO - printmesh plugin 0.1.0 started" in proc.stdout, output
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 200 MB
