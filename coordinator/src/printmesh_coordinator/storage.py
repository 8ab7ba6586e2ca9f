"""The coordinator's side of its store: which backend, and on which thread its work runs.

A local disk write takes a millisecond, so the loop writes it itself and feeds the outcome
straight back into the printer's machine, as it always has. An S3 request takes a round
trip and may be retried, so with ``store.type: s3`` every upload (and the job summary,
which lists and reads the bucket) runs on one upload thread, in the order queued, and its
outcome reaches the machine as a queued ``Written``/``WriteFailed`` input. The machine
waits for that outcome under its own ``store`` deadline (``timeouts.capture``), so a store
that never answers fails the point and releases the print on the machine's own timeline.
The thread is FIFO: a layer's metadata, queued after its images were confirmed, is also
uploaded after them. While the bucket cannot be reached, that thread keeps what it cannot
upload in a spool on this disk (``spool.py``) and uploads it, in order, once it answers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from printmesh_coordinator.config import CoordinatorSection
from printmesh_coordinator.messages import Input, WriteFailed, Written
from printmesh_coordinator.page_worker import PageProcess, PageWorker
from printmesh_coordinator.spool import Spool
from printmesh_coordinator.store import SUMMARY_NAME, Store
from printmesh_core.models.coordinator import JobSummary, LayerCapture
from printmesh_core.models.printer import HoldPlan

log = logging.getLogger("printmesh.coordinator.store")

UPLOADS_QUEUED_MAX = 10_000
DRAIN_EVERY = 2.0  # s: with captures spooled, the upload thread tries the store this often when idle
DRAIN_FOR = 2.0  # s: one pass of uploading spooled captures, so that new work waits at most this long


class CaptureStore(Protocol):
    """What the coordinator needs of a backend (``store.py`` local, ``store_s3.py`` S3)."""

    remote: bool

    @property
    def where(self) -> str: ...

    def write(self, relative: str, data: bytes) -> object: ...

    def read(self, relative: str) -> bytes: ...

    def layers(self, printer: str, job: str) -> list[LayerCapture]: ...

    def summary(
        self,
        printer: str,
        job: str,
        outcome: str,
        gcode_file: str | None,
        print_start_time: float | None,
        now: float,
        published: list[LayerCapture] | None = None,
        plan: HoldPlan | None = None,
        total_layers: int | None = None,
    ) -> JobSummary | None: ...


def oserror(exc: OSError) -> str:
    """'No space left on device', without the temporary file's name."""
    return exc.strerror or str(exc)


class Storage:
    def __init__(self, section: CoordinatorSection, deliver: Callable[[str, Input], None]) -> None:
        self.deliver = deliver
        self.store: CaptureStore
        self._folder: Callable[[str, str], Path]
        self._close_pages: Callable[[], None] = lambda: None
        self._seed: Callable[[str, bytes, str], None] | None = None
        self.spool: Spool | None = None
        # a job's spooled files all uploaded, and whether its summary was among them (the job ended)
        self.on_drained: Callable[[str, str, bool], None] = lambda printer, job, ended: None
        renderer = self.renderer = PageProcess() if section.helpers == "process" and section.pages else None
        if renderer is not None:
            renderer.start()  # it imports OpenCV now, beside the coordinator's start-up, not in the first hold
        if section.store.type == "s3":
            from printmesh_coordinator.store_s3 import S3Store
            from printmesh_coordinator.store_s3_pages import S3Pages

            s3 = S3Store(section.store)
            mirror = S3Pages(s3, render=renderer.build if renderer else None)
            self.store, self._folder, self._close_pages = s3, mirror.folder, mirror.close
            self.pages = PageWorker(mirror.build) if section.pages else None
            self._seed = mirror.seed if section.pages else None
            if section.store.spool:
                folder = section.store.spool_dir or section.captures_dir / ".spool"
                self.spool = Spool(folder, section.store.spool_max_mb * 1_000_000)
            self._queue: queue.Queue[Callable[[], None] | None] | None = queue.Queue(UPLOADS_QUEUED_MAX)
            self._thread: threading.Thread | None = threading.Thread(target=self._run, name="store", daemon=True)
            self._thread.start()
            self.later(s3.client)  # import the client and its pool now, on that thread: not in the first hold
        else:
            local = Store(section.captures_dir, section.fsync)
            self.store, self._folder = local, local.page_folder
            self.pages = PageWorker(renderer.build if renderer else None) if section.pages else None
            self._queue, self._thread = None, None

    @property
    def where(self) -> str:
        return self.store.where

    def write(self, printer: str, path: str, data: bytes) -> Input | None:
        """Store one file; its outcome now (local) or later through ``deliver`` (remote)."""
        if self._queue is None:
            return self._write(path, data)
        self.later(lambda: self.deliver(printer, self._write(path, data)))
        return None

    def write_here(self, path: str, data: bytes) -> Input:
        """Store one file from where the store's I/O runs (the upload thread, or the loop for a local store)."""
        return self._write(path, data)

    def read(self, path: str) -> bytes:
        """A stored file, or one still waiting in the spool (any thread)."""
        kept = self.spool.find(path) if self.spool is not None else None
        return kept if kept is not None else self.store.read(path)

    def _write(self, path: str, data: bytes) -> Input:
        spool = self.spool
        if spool is not None and len(spool):
            self._drain()
            if len(spool):  # still waiting: this one goes behind them
                return self._spooled(path, data, None)
        try:
            etag = self.store.write(path, data)
        except OSError as exc:
            if spool is not None and getattr(exc, "transient", False):
                return self._spooled(path, data, exc)
            return WriteFailed(path, oserror(exc))
        self._seeded(path, data, etag)
        return Written(path)

    def _seeded(self, path: str, data: bytes, etag: object) -> None:
        if self._seed is not None and isinstance(etag, str):
            try:
                self._seed(path, data, etag)
            except OSError as exc:  # only a cache: the page downloads the object instead
                log.debug("store: no mirror copy of %s: %s", path, exc)

    def _spooled(self, path: str, data: bytes, cause: OSError | None) -> Input:
        assert self.spool is not None
        first = not len(self.spool)
        try:
            self.spool.put(path, data)
        except OSError as exc:
            return WriteFailed(path, oserror(exc) if cause is None else f"{oserror(cause)}; {oserror(exc)}")
        if first and cause is not None:  # later ones only queue behind the first
            log.warning("store: %s; keeping captures in %s and uploading them, in order, once it answers",
                        oserror(cause), self.spool.folder)  # fmt: skip
        return Written(path)

    def _drain(self) -> None:
        """Upload spooled files, oldest first, for up to ``DRAIN_FOR``; stop at the first that fails."""
        spool = self.spool
        if spool is None:
            return
        end = time.monotonic() + DRAIN_FOR
        drained: set[tuple[str, ...]] = set()  # (printer, job) of each file uploaded
        ended: set[tuple[str, ...]] = set()  # those whose summary was among them
        while len(spool) and time.monotonic() < end:
            entry = spool.oldest()
            if entry is None:
                break
            relative, data = entry
            try:
                etag = self.store.write(relative, data)
            except OSError:  # logged by the store (the first of each cause); tried again later
                break
            spool.done()
            self._seeded(relative, data, etag)
            folder = tuple(relative.split("/", 2)[:2])
            drained.add(folder)
            if relative.endswith("/" + SUMMARY_NAME):  # e.g. spooled before a restart: the page is final
                ended.add(folder)
            if not len(spool):
                log.warning("store: %s answers again: every spooled file is uploaded", self.where)
        for folder in drained:
            if len(folder) == 2 and not spool.holds("/".join(folder)):
                self.on_drained(folder[0], folder[1], folder in ended)

    def write_aside(self, path: str, data: bytes, what: str) -> None:
        """A file no machine waits for (a watch verdict's sidecar): stored in turn, a failure logged."""

        def work() -> None:
            outcome = self._write(path, data)
            if isinstance(outcome, WriteFailed):
                log.error("store: %s not written: %s", what, outcome.error)

        self.later(work)

    def later(self, work: Callable[[], None]) -> None:
        """Run ``work`` where the store's I/O runs: now (local) or queued on the upload thread."""
        if self._queue is None:
            work()
            return
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            log.error("store: %d uploads queued, dropping one (is %s answering?)", UPLOADS_QUEUED_MAX, self.where)

    def page(self, printer: str, job: str, final: bool) -> None:
        """Queue the job page's update; the page worker builds it, never the loop."""
        if self.pages is None:
            return
        try:
            folder = self._folder(printer, job)
        except OSError as exc:
            log.error("%s: no job page for %s: %s", printer, job, exc)
            return
        (self.pages.finish if final else self.pages.update)(folder)

    def idle(self, timeout: float) -> bool:
        """Nothing queued for the upload thread any more (local: always)."""
        if self._queue is None:
            return True
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            try:
                work = self._queue.get(timeout=DRAIN_EVERY if self.spool is not None and len(self.spool) else None)
            except queue.Empty:
                try:
                    self._drain()
                except Exception:  # the thread must live on
                    log.exception("store: uploading spooled files failed")
                continue
            try:
                if work is None:
                    return
                work()
            except Exception:  # one failed upload must not end the thread
                log.exception("store: queued work failed")
            finally:
                self._queue.task_done()

    def close(self, uploads_grace: float, pages_grace: float) -> None:
        """Let queued uploads finish (up to ``uploads_grace``), then the pages, then remove the mirror."""
        if self._queue is not None and self._thread is not None:
            if not self.idle(uploads_grace):
                log.warning("store: %d uploads still queued at exit, not written", self._queue.unfinished_tasks)
            self._queue.put(None)
            self._thread.join(1.0)
        if self.spool is not None and len(self.spool):
            log.warning("store: %d files still spooled in %s: uploaded when the coordinator starts again",
                        len(self.spool), self.spool.folder)  # fmt: skip
        if self.pages is not None:
            self.pages.close(pages_grace)
        if self.renderer is not None:
            self.renderer.close(pages_grace)
        self._close_pages()
