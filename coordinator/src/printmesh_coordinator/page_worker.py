"""Job pages are written on their own thread, never on the loop that decides holds.

The loop only queues a folder (a dict insert under a lock); the worker coalesces repeated
requests for the same folder and runs at a lower CPU priority, so thumbnails and video
encoding cannot delay a move, a capture or a release. On shutdown a running encode is
stopped between frames and the page is left saying how to finish it (``--render``).
The coordinator builds its pages in a helper process (``PageProcess``: on a thread, the
builder's Python took the GIL in turns with the loop); OpenCV is imported there, or by
this worker as it starts when it builds on its own thread, never by the loop: startup
stays light and the import never lands in the middle of a hold.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from printmesh_coordinator.child import Child
from printmesh_coordinator.page_html import Built

Builder = Callable[[Path, bool, threading.Event], Built]

log = logging.getLogger("printmesh.coordinator.page")

NICE = 15
SERVICE = "printmesh_coordinator.page_service"


class PageProcess:
    """``page.build`` in a helper process, with the ``Builder`` signature: the caller's ``stop``
    reaches a running encode as a signal. ``start`` it with the coordinator, so its imports
    (OpenCV, numpy) are done before the first hold, as the thread's were."""

    def __init__(self) -> None:
        self.child = Child(SERVICE, name="job page", nice=NICE, timeout=None)  # a final encode takes minutes

    def start(self) -> None:
        self.child.start()

    def build(self, folder: Path, final: bool, stop: threading.Event | None = None) -> Built:
        built: Built = self.child.call((str(folder), final), stop=stop)
        return built

    def close(self, grace: float) -> None:
        self.child.close(grace)


class PageWorker:
    def __init__(self, builder: Builder | None = None) -> None:
        """``builder(folder, final, stop)``: how a page is built; default ``page.build`` on the folder
        itself (an S3 store passes its mirror's, which downloads and uploads around it)."""
        self._builder = builder
        self._pending: dict[Path, bool] = {}  # folder -> final, in request order
        self._cond = threading.Condition()
        self._closing = False
        self.stop = threading.Event()  # set: abort a running encode between frames
        self.built = 0
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="job-page", daemon=True)
        self._thread.start()

    def update(self, folder: Path) -> None:
        """Any thread: rebuild the running page of ``folder`` (after a layer was stored)."""
        self._queue(folder, False)

    def finish(self, folder: Path) -> None:
        """Any thread: the job ended; encode its videos and write its final page."""
        self._queue(folder, True)

    def _queue(self, folder: Path, final: bool) -> None:
        with self._cond:
            self._pending[folder] = self._pending.get(folder, False) or final
            self._cond.notify()

    def idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being built (for tests and the benchmark)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: nice applies to this thread only
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        build: Builder | None = self._builder
        if build is None:  # built here: OpenCV imported on this thread (a helper process imports its own)
            page = importlib.import_module("printmesh_coordinator.page")
            build = lambda folder, final, stop: page.build(folder, final=final, stop=stop)  # noqa: E731
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return
                folder = next(iter(self._pending))
                final = self._pending.pop(folder)
                self._busy = True
            try:
                built = build(folder, final, self.stop)
                self.built += 1
                if final:
                    log.info("job page %s (%d timelapse videos)%s", built.index, len(built.videos),
                             f": {built.note}" if built.note else "")  # fmt: skip
            except Exception as exc:  # a bad folder must not end the worker (OSError, cv2.error...)
                log.error("job page of %s not written: %s", folder, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def close(self, grace: float) -> None:
        """Finish what is queued within ``grace`` seconds, then stop encoding and return."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(grace)
        if self._thread.is_alive():
            self.stop.set()
            self._thread.join(grace)
