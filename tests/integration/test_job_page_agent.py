"""The coordinator process writes the job page: after each layer (reloading) and at the job's end
(final, with videos). Real broker, real camera agent, the bridge's contract from ``FakeBridge``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Observer
from coordinator_support import FakeBridge, camera_config, coordinator_config, printer_entry

from printmesh_coordinator.page import page_state
from printmesh_coordinator.timelapse import count_frames
from printmesh_devkit.broker import LocalBroker


@pytest.fixture
def octo(broker: LocalBroker) -> Iterator[FakeBridge]:
    bridge = FakeBridge(broker, "octo").start()
    yield bridge
    bridge.stop()


def wait_state(folder: Path, state: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while page_state(folder) != state:
        assert time.monotonic() < end, f"page of {folder} is {page_state(folder)}, not {state}"
        time.sleep(0.05)


def test_page_follows_the_print_and_is_finished_with_its_videos(broker, observer: Observer, run_agent, octo, tmp_path):
    captures = tmp_path / "captures"
    run_agent("camera", camera_config())
    coord = run_agent("coordinator", coordinator_config("coord", captures, [printer_entry("octo")]))
    observer.topic("printmesh/cam/camera/bed/availability", where=lambda d: d["state"] == "online", timeout=20)
    octo.wait_armed(holder="coord/coordinator")
    octo.start_print("parts/cube.gcode")
    assert octo.hold_at(5, z=1.0).released.wait(30), coord.log()
    (folder,) = (captures / "octo").iterdir()
    wait_state(folder, "running")  # written after the layer, while the print goes on
    html = (folder / "index.html").read_text()
    assert html.count('class="shot"') == 9 and 'http-equiv="refresh"' in html and "<video" not in html
    assert octo.hold_at(10, z=2.0).released.wait(30), coord.log()
    end = time.monotonic() + 30
    while (folder / "index.html").read_text().count('class="shot"') != 18:
        assert time.monotonic() < end, "the page was not updated after layer 10"
        time.sleep(0.05)
    octo.end_print()
    wait_state(folder, "final")
    videos = sorted((folder / "page" / "video").glob("[!.]*.webm"))
    assert len(videos) == 9 and all(count_frames(v) == 2 for v in videos)
    assert "job page" in coord.log() and coord.stop() == 0


def test_pages_false_writes_no_page(broker, observer: Observer, run_agent, octo, tmp_path):
    captures = tmp_path / "captures"
    run_agent("camera", camera_config())
    config = coordinator_config("coord", captures, [printer_entry("octo", grid={"size": 1})], pages=False)
    run_agent("coordinator", config)
    observer.topic("printmesh/cam/camera/bed/availability", where=lambda d: d["state"] == "online", timeout=20)
    octo.wait_armed(holder="coord/coordinator")
    octo.start_print("parts/cube.gcode")
    assert octo.hold_at(5, z=1.0).released.wait(30)
    octo.end_print()
    (folder,) = (captures / "octo").iterdir()
    end = time.monotonic() + 20
    while not (folder / "job_summary.json").exists():
        assert time.monotonic() < end
        time.sleep(0.05)
    time.sleep(1.0)  # a page, if one were queued, would be there by now (a 1-image page takes ~50 ms)
    assert not (folder / "index.html").exists() and not (folder / "page").exists()
