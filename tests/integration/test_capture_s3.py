"""Captures in an S3 bucket, all real (issue 14 §3): the capture print of test_capture_e2e
(mosquitto, ``octoprint serve`` with the virtual printer and the bridge, the synthetic camera,
the coordinator) with ``coordinator.store.type: s3`` against a real SeaweedFS server that
requires signed requests.

Evidence: every image in the bucket has the sha256 of a JPEG the camera published, and each
layer's metadata lists exactly those; a watcher listing the bucket during the print never
sees a metadata object whose images are not all there; the summary and the job page are in
the bucket, and the page, copied out of the bucket object by object, opens in chromium with
every thumbnail, image and video link resolving. With a wrong secret key every hold fails
at its first upload with a clear error (logged once by the store, counted in the printer's
state), is released at once, and the print completes.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentProcess, Observer
from job_page_browser import check_job_page, chromium
from octoprint_harness import OctoPrint, start_octoprint
from printing import FAST, printable
from seaweed_support import ACCESS_KEY, SECRET_KEY, Seaweed, start_seaweed
from test_capture_e2e import BASE, CAMS, COORD, FILE, PLANNED, PRINTER, Rig, check_serial_log

from printmesh_core.models.coordinator import CoordinatorState, JobSummary, LayerCapture
from printmesh_devkit.broker import LocalBroker

PREFIX = "farm1/caps"
STATE = f"printmesh/{COORD}/coordinator/{PRINTER}/state"
SUMMARY = f"printmesh/{COORD}/coordinator/{PRINTER}/summary"


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[Seaweed]:
    server = start_seaweed(tmp_path / "seaweed")
    yield server
    server.stop()


@pytest.fixture
def s3_rig(
    broker: LocalBroker, observer: Observer, run_agent: Callable[..., AgentProcess], tmp_path: Path, seaweed: Seaweed
) -> Iterator[Callable[[str], Rig]]:
    started: list[OctoPrint] = []

    def build(secret: str) -> Rig:
        settings = {"node_id": PRINTER, "mqtt": {"host": "127.0.0.1", "port": broker.port}}
        octoprint = start_octoprint(tmp_path / "octoprint", settings)
        started.append(octoprint)
        camera = run_agent("camera", {"node_id": CAMS, "camera": {"cameras": [
            {"name": "bed", "source": {"type": "synthetic", "fps": 30}, "width": 640, "height": 480}]}})  # fmt: skip
        secret_file = tmp_path / "s3-secret"
        secret_file.write_text(secret + "\n")
        store = {"type": "s3", "endpoint": seaweed.endpoint, "bucket": seaweed.bucket, "prefix": PREFIX,
                 "access_key": ACCESS_KEY, "secret_key_file": str(secret_file)}  # fmt: skip
        printer = {"node": PRINTER, "plan": {"every": 5}, "grid": {"size": 3, "spacing": 30}, "settle": 0.05,
                   "cameras": [{"node": CAMS, "camera": "bed"}]}  # fmt: skip
        section = {"captures_dir": str(tmp_path / "unused"), "store": store, "printers": [printer]}
        coordinator = run_agent("coordinator", {"node_id": COORD, "coordinator": section})
        octoprint.wait_operational()
        observer.topic(f"{BASE}/hold", where=lambda d: d["armed"] is not None, timeout=30)
        return Rig(octoprint, camera, coordinator, tmp_path / "unused", observer)

    yield build
    for octoprint in started:
        octoprint.stop()


class BucketWatcher:
    """Lists the bucket over and over during the print, as a reader would: every metadata object
    seen must list only images that the same listing already holds."""

    def __init__(self, seaweed: Seaweed) -> None:
        self.client = seaweed.client()
        self.bucket = seaweed.bucket
        self.checked: set[str] = set()
        self.violations: list[str] = []
        self.listings = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BucketWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            keys = {o.object_name for o in self.client.list_objects(self.bucket, prefix=PREFIX + "/", recursive=True)}
            self.listings += 1
            for key in sorted(keys - self.checked):
                if "_metadata_" not in key:
                    continue
                md = LayerCapture.model_validate_json(get(self.client, self.bucket, key))
                missing = [i.path for i in md.images if f"{PREFIX}/{i.path}" not in keys]
                if missing:
                    self.violations.append(f"{key} listed before its images {missing}")
                self.checked.add(key)
            time.sleep(0.05)


def get(client: Any, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def run_print(rig: Rig) -> tuple[bytes, JobSummary, int]:
    data = printable(FILE)
    rig.octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    mark = rig.observer.mark()
    rig.octoprint.upload(f"{FILE}.gcode", data)
    rig.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=240)
    return data, JobSummary.model_validate(rig.observer.topic(SUMMARY, after=mark, timeout=60)), mark


def wait_for_final_page(client: Any, bucket: str, job_key: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if b'name="printmesh-page" content="final"' in get(client, bucket, f"{job_key}/index.html"):
                return
        except Exception:  # not there yet
            pass
        time.sleep(0.5)
    pytest.fail(f"no final job page at {job_key}/index.html within {timeout:g} s")


def test_capture_print_into_s3_stores_every_image_and_metadata_whole_and_in_order(
    s3_rig: Callable[[str], Rig], seaweed: Seaweed, tmp_path: Path
) -> None:
    r = s3_rig(SECRET_KEY)
    with BucketWatcher(seaweed) as watcher:
        data, summary, mark = run_print(r)
        client = seaweed.client()
        job_key = f"{PREFIX}/{PRINTER}/{summary.job}"
        wait_for_final_page(client, seaweed.bucket, job_key)
    assert summary.outcome == "done" and summary.layers_captured == PLANNED and not summary.failures, summary
    assert summary.images == 9 * len(PLANNED)
    assert not watcher.violations, watcher.violations
    assert watcher.listings > 20 and len(watcher.checked) == len(PLANNED), (watcher.listings, watcher.checked)
    # what the camera published, by sha256
    published = {
        hashlib.sha256(m.payload).hexdigest() for m in r.observer.messages[mark:] if "/camera/bed/capture/" in m.topic
    }
    objects = {o.object_name: o for o in client.list_objects(seaweed.bucket, prefix=job_key + "/", recursive=True)}
    names = {k[len(job_key) + 1 :] for k in objects}
    images = {n for n in names if n.endswith(".jpg") and "/" not in n}
    metas = {n for n in names if "_metadata_" in n}
    assert len(images) == 9 * len(PLANNED) and len(metas) == len(PLANNED), sorted(names)
    listed: dict[str, str] = {}
    for name in metas:
        md = LayerCapture.model_validate_json(get(client, seaweed.bucket, f"{job_key}/{name}"))
        assert md.complete and md.layer in PLANNED and sorted(i.index for i in md.images) == list(range(9))
        assert md.metadata_path == f"{PRINTER}/{summary.job}/{name}"
        listed.update({i.path: i.sha256 for i in md.images})
    for name in images:
        digest = hashlib.sha256(get(client, seaweed.bucket, f"{job_key}/{name}")).hexdigest()
        assert digest in published, f"{name}: not a JPEG the camera published"
        assert listed[f"{PRINTER}/{summary.job}/{name}"] == digest, name
    assert len(listed) == len(images)
    # the summary in the bucket is the one published
    stored = JobSummary.model_validate_json(get(client, seaweed.bucket, f"{job_key}/job_summary.json"))
    assert stored.outcome == "done" and stored.layers_captured == PLANNED and stored.images == summary.images
    assert [x.layer for x in stored.layers] == PLANNED and not stored.orphans
    # the job page, as stored: copied out of the bucket key by key, it opens with every link resolving
    assert "index.html" in names and "page/style.css" in names and sum(n.startswith("page/thumbs/") for n in names)
    copy = tmp_path / "from-bucket" / summary.job
    for name in names:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(get(client, seaweed.bucket, f"{job_key}/{name}"))
    with chromium() as browser:
        seen = check_job_page(browser, copy)
    assert seen == {"images": 9 * len(PLANNED), "videos": 9}
    assert not list(r.captures.rglob("*.jpg")), "nothing went to captures_dir"
    check_serial_log(r.octoprint.serial_log(), data)


def test_a_wrong_secret_key_fails_each_hold_clearly_and_releases_the_print(
    s3_rig: Callable[[str], Rig], seaweed: Seaweed
) -> None:
    r = s3_rig("not-the-secret")
    data, summary, mark = run_print(r)
    assert summary.outcome == "done" and summary.images == 0 and summary.layers_held == PLANNED
    assert all(x.status != "complete" for x in summary.layers) and len(summary.failures) >= len(PLANNED)
    assert r.octoprint.api("GET", "/api/job")["progress"]["completion"] == 100
    events = [m for m in r.observer.messages[mark:] if m.topic == f"{BASE}/event"]
    held = [m for m in events if b'"event":"held"' in m.payload.replace(b" ", b"")]
    released = [m for m in events if b'"event":"released"' in m.payload.replace(b" ", b"")]
    assert len(held) == len(released) == len(PLANNED), (len(held), len(released))
    for start, end in zip(held, released, strict=True):
        took = json.loads(end.payload)["ts"] - json.loads(start.payload)["ts"]
        assert 0 <= took < 10, f"released {took:.1f} s after the hold: the coordinator's word, not the watchdog's"
    captures = [
        LayerCapture.model_validate_json(m.payload)
        for m in r.observer.messages[mark:]
        if m.topic == f"printmesh/{COORD}/coordinator/{PRINTER}/capture"
    ]
    assert [c.layer for c in captures] == PLANNED
    for md in captures:
        assert not md.images and md.release is not None and md.release.by == "coordinator"
        assert any(f.kind == "write_failed" and "SignatureDoesNotMatch" in f.message for f in md.failures), md
    states = [CoordinatorState.model_validate_json(m.payload) for m in r.observer.messages[mark:] if m.topic == STATE]
    assert states[-1].failures >= len(PLANNED) and states[-1].images == 0, states[-1]
    told = [st.message for st in states if st.message and "SignatureDoesNotMatch" in st.message]
    assert told and "check coordinator.store.secret_key" in told[0], [st.message for st in states]
    lines = [line for line in r.coordinator.log().splitlines() if "printmesh.coordinator.store:" in line]
    causes = [line for line in lines if "ERROR" in line and "SignatureDoesNotMatch" in line]
    assert len(causes) == 1, lines
    assert "check coordinator.store.secret_key" in causes[0] and f"s3://{seaweed.bucket}/{PREFIX}/" in causes[0]
    left = list(seaweed.client().list_objects(seaweed.bucket, prefix=PREFIX + "/", recursive=True))
    assert not left, [o.object_name for o in left]
    check_serial_log(r.octoprint.serial_log(), data)
