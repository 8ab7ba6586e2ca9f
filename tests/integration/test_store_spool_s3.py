"""An S3 store that stops answering mid-job: the coordinator's storage keeps the captures on its own
disk and uploads them, in order, once the store answers again. Real SeaweedFS (stopped with
SIGSTOP, so connections hang as on a network cut, then SIGCONT), the coordinator's real
``Storage`` and upload thread."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

from seaweed_support import ACCESS_KEY, SECRET_KEY, Seaweed, start_seaweed

from printmesh_coordinator.config import CoordinatorSection
from printmesh_coordinator.messages import Input, Written
from printmesh_coordinator.storage import Storage
from printmesh_coordinator.store import SUMMARY_NAME
from printmesh_coordinator.store_config import StoreConfig


def layer(n: int) -> dict[str, bytes]:
    files = {f"p/j/layer_{n:04d}_pos_{i:02d}_t.jpg": os.urandom(40_000) for i in range(3)}
    return files | {f"p/j/layer_{n:04d}_metadata_t.json": b'{"layer": %d}' % n}


def assert_in_bucket(weed: Seaweed, files: dict[str, bytes]) -> None:
    """Every file is in the bucket, byte for byte (sha256)."""
    client = weed.client()
    for path, data in files.items():
        response = client.get_object(weed.bucket, path)
        try:
            stored = response.read()
        finally:
            response.close()
            response.release_conn()
        assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest(), path


def test_captures_written_while_the_bucket_is_unreachable_are_kept_and_uploaded_in_order(tmp_path: Path) -> None:
    weed = start_seaweed(tmp_path / "seaweed")
    store = StoreConfig(type="s3", endpoint=weed.endpoint, bucket=weed.bucket, access_key=ACCESS_KEY,
                        secret_key=SECRET_KEY, timeout=1.0, retries=0, spool_dir=tmp_path / "spool")  # type: ignore[arg-type]  # fmt: skip
    section = CoordinatorSection(store=store, pages=False, captures_dir=tmp_path / "captures")
    outcomes: list[Input] = []
    drained: list[tuple[str, str]] = []
    storage = Storage(section, lambda printer, message: outcomes.append(message))
    storage.on_drained = lambda printer, job, ended: drained.append((printer, job))
    uploads: list[str] = []
    real_write = storage.store.write

    def recorded(relative: str, data: bytes) -> object:
        result = real_write(relative, data)
        uploads.append(relative)  # only once the store took it
        return result

    storage.store.write = recorded  # type: ignore[method-assign]
    stopped = False
    try:
        before, during, after = layer(5), layer(10), layer(15)
        for path, data in before.items():
            storage.write("p", path, data)
        assert storage.idle(30) and all(isinstance(m, Written) for m in outcomes)

        os.kill(weed.process.pid, signal.SIGSTOP)  # connections are accepted by the kernel, never answered
        stopped = True
        started = time.monotonic()
        for path, data in during.items():
            storage.write("p", path, data)
        assert storage.idle(30)
        took = time.monotonic() - started
        print(f"4 writes against a stopped store answered in {took:.2f} s (timeout 1 s, no retry)")
        assert [type(m).__name__ for m in outcomes[4:]] == ["Written"] * 4, outcomes[4:]
        assert took < 5, "one timeout, then kept at once"
        assert storage.spool is not None and len(storage.spool) == 4 and storage.spool.holds("p/j")
        image = next(iter(during))
        assert storage.read(image) == during[image], "a spooled image is readable (the print watch reads it back)"

        os.kill(weed.process.pid, signal.SIGCONT)
        stopped = False
        back = time.monotonic()
        for path, data in after.items():  # written while the spool drains: behind it
            storage.write("p", path, data)
        end = time.monotonic() + 60
        while (len(storage.spool) or not storage.idle(0)) and time.monotonic() < end:
            time.sleep(0.1)
        print(f"spool empty {time.monotonic() - back:.2f} s after the store came back")
        assert len(storage.spool) == 0 and storage.idle(1)
        assert [type(m).__name__ for m in outcomes] == ["Written"] * 12
        assert uploads == [*before, *during, *after], "oldest first: metadata never before its images"
        assert drained and set(drained) == {("p", "j")}
        assert_in_bucket(weed, before | during | after)
        assert not list((tmp_path / "spool").glob("*.spool")), "nothing left behind"
    finally:
        if stopped:
            os.kill(weed.process.pid, signal.SIGCONT)
        storage.close(5, 1)
        weed.stop()


def test_a_write_the_store_refuses_is_not_kept_it_fails_with_the_stores_message(tmp_path: Path) -> None:
    weed = start_seaweed(tmp_path / "seaweed")
    store = StoreConfig(type="s3", endpoint=weed.endpoint, bucket=weed.bucket, access_key=ACCESS_KEY,
                        secret_key="wrong-secret", timeout=1.0, retries=0, spool_dir=tmp_path / "spool")  # type: ignore[arg-type]  # fmt: skip
    section = CoordinatorSection(store=store, pages=False, captures_dir=tmp_path / "captures")
    outcomes: list[Input] = []
    done = threading.Event()
    storage = Storage(section, lambda printer, message: (outcomes.append(message), done.set()))
    try:
        storage.write("p", "p/j/layer_0005_pos_00_t.jpg", b"x")
        assert done.wait(30) and storage.idle(10)
        failed = outcomes[0]
        assert type(failed).__name__ == "WriteFailed" and "SignatureDoesNotMatch" in failed.error  # type: ignore[attr-defined]
        assert "secret_key" in failed.error  # type: ignore[attr-defined]
        assert storage.spool is not None and len(storage.spool) == 0
    finally:
        storage.close(5, 1)
        weed.stop()


def test_files_spooled_before_a_restart_are_uploaded_by_the_next_run_and_its_ended_job_gets_its_final_page(
    tmp_path: Path,
) -> None:
    weed = start_seaweed(tmp_path / "seaweed")
    store = StoreConfig(type="s3", endpoint=weed.endpoint, bucket=weed.bucket, access_key=ACCESS_KEY,
                        secret_key=SECRET_KEY, timeout=1.0, retries=0, spool_dir=tmp_path / "spool")  # type: ignore[arg-type]  # fmt: skip
    section = CoordinatorSection(store=store, pages=False, captures_dir=tmp_path / "captures")
    files = layer(10) | {f"p/j/{SUMMARY_NAME}": b'{"outcome": "done"}'}
    os.kill(weed.process.pid, signal.SIGSTOP)
    stopped = True
    try:
        first = Storage(section, lambda printer, message: None)
        try:
            for path, data in files.items():
                first.write("p", path, data)
            assert first.idle(30)
            assert first.spool is not None and len(first.spool) == 5
        finally:
            first.close(5, 1)  # the coordinator stops with everything still spooled
        os.kill(weed.process.pid, signal.SIGCONT)
        stopped = False

        drained: list[tuple[str, str, bool]] = []
        second = Storage(section, lambda printer, message: None)
        second.on_drained = lambda printer, job, ended: drained.append((printer, job, ended))
        try:
            end = time.monotonic() + 60
            while (second.spool is None or len(second.spool) or not drained) and time.monotonic() < end:
                time.sleep(0.1)
            assert drained == [("p", "j", True)], "uploaded by the next run; the summary was among them: final page"
        finally:
            second.close(5, 1)
        assert_in_bucket(weed, files)
        assert not list((tmp_path / "spool").glob("*.spool")), "nothing left behind"
    finally:
        if stopped:
            os.kill(weed.process.pid, signal.SIGCONT)
        weed.stop()
