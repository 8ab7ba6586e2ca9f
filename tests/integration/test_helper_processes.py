"""The coordinator's helper processes (issue 14 §4: the print watch and the job pages left the
loop's GIL). The real detector gives the same verdicts there; a watch process that dies is
replaced and the job resumed from the store; a detector error costs one layer; a page is built
there and a shutdown stops its encode; and no helper outlives its coordinator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from job_folders import make_job
from virtual_camera_support import SAMPLE, virtual
from watch_support import metadata, write_layer

from printmesh_camera.sources.render import VirtualRenderer
from printmesh_camera.sources.toolpath import parse_file
from printmesh_coordinator.config import WatchConfig
from printmesh_coordinator.page_worker import PageProcess, PageWorker
from printmesh_coordinator.store import Store
from printmesh_coordinator.watch import GrowthHint, Watcher
from printmesh_coordinator.watch_process import ProcessDetector
from printmesh_coordinator.watch_rules import Growth
from printmesh_coordinator.watch_worker import Judged, Layer, WatchWorker

SIZE = (960, 540)
POINTS = [(70.0, 70.0), (100.0, 100.0), (130.0, 130.0)]
ECHO = "watch_echo_detector"  # tests/watch_echo_detector.py, imported by the helper process


def gone(pid: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            threads = len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            return True
        if state in ("Z", "X") and threads <= 1:  # exited, its threads too (a dying leader shows Z before them)
            return True
        time.sleep(0.05)
    return False


def test_the_process_gives_the_detectors_own_verdicts() -> None:
    camera = virtual(mount="head", seed=4, faults=[{"kind": "spaghetti", "layer": 12, "seed": 5}],
                     realism={"noise": 0, "jitter": 0, "drift": 0})  # fmt: skip
    renderer = VirtualRenderer(camera, parse_file(SAMPLE), SIZE)
    here, remote = Watcher(), ProcessDetector("printmesh_coordinator.watch.detector")
    remote.start()
    try:
        there = remote.Watcher()
        frame = 0
        kinds = []
        for index, layer in enumerate(range(5, 21, 5)):
            z = renderer.height_of(layer - 1) + 5
            images = {}
            for point, (x, y) in enumerate(POINTS):
                frame += 1
                image = renderer.frame(layer - 1, (x, y, z), frame, index * 47.0 + point)
                images[("bed", point)] = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
            a = here.judge(layer, images, GrowthHint(z=z))
            b = there.judge(layer, images, remote.GrowthHint(z=z))
            assert a.model_copy(update={"elapsed_ms": 0}) == b.model_copy(update={"elapsed_ms": 0}), layer
            kinds.append(b.verdict)
        assert kinds[:3] == ["ok", "ok", "spaghetti"], "compared with its own history, in the process"
        assert remote.child.pid not in (None, os.getpid())
    finally:
        remote.close(5)


def test_a_process_that_dies_is_replaced_and_the_job_resumed_from_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path)
    layers = {n: metadata(layer=n).model_copy(update={"z_height": n / 5}) for n in (5, 10, 15, 20, 99)}
    for md in layers.values():
        write_layer(store, md)
    out: list[Judged] = []
    worker = WatchWorker(store.read, out.append, detector=ECHO, history=store.layers)

    def judge(n: int) -> None:
        worker.submit(Layer("octo", WatchConfig(), layers[n], Growth(n, n / 5, None, None)))
        assert worker.idle(60)

    try:
        judge(5)
        judge(10)
        assert worker._process is not None
        first = worker._process.child.pid
        assert first is not None and first != os.getpid()
        assert os.sched_getscheduler(first) == os.SCHED_IDLE, "CPU only when no other task wants it"
        assert [(j.verdict.layer, j.verdict.compared_with) for j in out] == [(5, []), (10, [5])]
        assert out[-1].verdict.reason.startswith(f"{first} 2 "), "judged in the helper process, both images"
        os.kill(first, signal.SIGKILL)
        assert gone(first)
        judge(15)  # a new process, which never saw layer 10: the worker resumes the job from the store
        second = worker._process.child.pid
        assert second not in (None, first) and worker.resumed == 1 and worker._process.child.generation == 2
        assert (out[-1].verdict.layer, out[-1].verdict.compared_with) == (15, [10])
        judge(99)  # the detector raises: that layer is lost, the process and the job's history are not
        judge(20)
        assert worker.failed == 1 and worker._process.child.pid == second and worker.resumed == 1
        assert [j.verdict.layer for j in out] == [5, 10, 15, 20] and out[-1].verdict.compared_with == [15]
    finally:
        worker.close(5)
    assert gone(second), "closed with its worker"


def test_a_detector_that_cannot_be_imported_turns_the_watch_off_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    worker = WatchWorker(lambda path: b"", lambda j: None, detector="no_such_detector_module")
    try:
        worker._thread.join(30)
        assert not worker._thread.is_alive()
    finally:
        worker.close(5)
    assert "print watch off: the detector cannot be started: ModuleNotFoundError: No module named" in caplog.text


def test_no_helper_outlives_its_coordinator(tmp_path: Path) -> None:
    script = (
        "from printmesh_coordinator.watch_process import ProcessDetector\n"
        f"d = ProcessDetector({ECHO!r}); d.start(); print(d.child.pid, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    coordinator = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert coordinator.stdout is not None
        helper = int(coordinator.stdout.readline())
        assert not gone(helper, 0.5)
        coordinator.kill()  # SIGKILL: no close, no atexit
        coordinator.wait(10)
        assert gone(helper), "the helper saw its socket close and exited"
    finally:
        coordinator.kill()


def test_a_page_is_built_in_its_process_and_a_shutdown_stops_its_encode(tmp_path: Path) -> None:
    folder = make_job(tmp_path, list(range(1, 301)), points=1, size=(960, 540))
    renderer = PageProcess()
    worker = PageWorker(renderer.build)
    try:
        worker.update(folder)
        assert worker.idle(120) and worker.built == 1 and (folder / "index.html").is_file()
        assert renderer.child.pid not in (None, os.getpid())
        worker.finish(folder)  # 300 frames to encode: seconds, so the close below lands in the middle
        time.sleep(0.5)
        started = time.monotonic()
        worker.close(0.2)  # grace over: ``stop`` is set, and reaches the process as a signal
        stopped_in = time.monotonic() - started
    finally:
        renderer.close(5)
    index = (folder / "index.html").read_text()
    assert "--render" in index and not list((folder / "page").rglob("*.webm")), "left saying how to finish it"
    assert stopped_in < 3, stopped_in
    built = PageProcess()
    try:
        stop = threading.Event()
        result = built.build(folder, True, stop)  # and a build nobody stops encodes the video
    finally:
        built.close(5)
    assert [v.frames for v in result.videos] == [300] and result.note is None
