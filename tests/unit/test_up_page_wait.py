"""`printmesh up`'s end of job: it waits for the coordinator's final job page and prints its path last.

No broker needed: the waiting and the report read only the job folder (the devkit checks the
page's marker text; it does not import the coordinator).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from printmesh_core.config import AgentSettings, MqttConfig
from printmesh_core.models.coordinator import JobSummary
from printmesh_devkit.up_print import PrintJob

RUNNING = '<meta name="printmesh-page" content="running">'
FINAL = '<meta name="printmesh-page" content="final">'


def _job(tmp_path: Path, images: int = 9) -> tuple[PrintJob, Path]:
    settings = AgentSettings.model_validate({"node_id": "demo"})
    job = PrintJob(tmp_path / "venv", tmp_path / "part.gcode", settings, MqttConfig(), tmp_path / "octoprint")
    job.summary = JobSummary(
        printer="demo", job="part_1", gcode_file="part.gcode", print_start_time=1.0, ended_at=2.0, outcome="done",
        layers_captured=[5], layers_held=[5], images=images, failures=[], total_hold_time=1.0, coordinators=["demo"],
    )  # fmt: skip
    folder = tmp_path / "captures" / "demo" / "part_1"
    folder.mkdir(parents=True)
    return job, folder / "index.html"


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_up_waits_for_the_final_page_then_prints_its_path_and_uri_last(tmp_path, capsys):
    job, index = _job(tmp_path)
    index.write_text(RUNNING)
    threading.Timer(0.6, lambda: index.write_text(FINAL)).start()
    start = time.monotonic()
    job.wait_for_page(tmp_path / "captures", threading.Event(), timeout=10)
    assert 0.5 < time.monotonic() - start < 5 and job.page_final is True
    assert job.report(tmp_path / "captures", "1883") == 0
    lines = _lines(capsys)
    assert lines[-2:] == [f"# job page: {index.resolve()}", f"# open it in a browser: {index.resolve().as_uri()}"]


def test_a_page_that_never_becomes_final_is_reported_plainly(tmp_path, capsys):
    job, index = _job(tmp_path)
    index.write_text(RUNNING)
    job.wait_for_page(tmp_path / "captures", threading.Event(), timeout=0.6)
    assert job.page_final is False
    assert job.report(tmp_path / "captures", "1883") == 0, "the images are there: the job itself did not fail"
    out = "\n".join(_lines(capsys))
    assert "the job page still unfinished (its videos are missing): the coordinator did not finish it in time" in out
    assert out.endswith(f"# open it in a browser: {index.resolve().as_uri()}")


def test_a_page_never_written_is_reported_and_no_path_is_printed(tmp_path, capsys):
    job, index = _job(tmp_path)
    job.wait_for_page(tmp_path / "captures", threading.Event(), timeout=0.6)
    job.report(tmp_path / "captures", "1883")
    out = "\n".join(_lines(capsys))
    assert not index.exists()
    assert "the job page was not written" in out and "# job page:" not in out


def test_ctrl_c_ends_the_wait_at_once(tmp_path):
    job, index = _job(tmp_path)
    stop = threading.Event()
    stop.set()
    start = time.monotonic()
    job.wait_for_page(tmp_path / "captures", stop, timeout=60)
    assert time.monotonic() - start < 1 and not index.exists()
