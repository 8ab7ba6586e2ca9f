"""One thread per camera: it owns the source, serves captures in order, publishes previews.

Why a thread per camera: a camera that hangs (a USB device that stops answering, an HTTP
server that accepts and says nothing) blocks only its own thread; the others keep serving.
Why one thread owning the source: OpenCV captures are not thread-safe, and serving the
queue from a single thread is what makes concurrent requests to one camera run one after
the other, in arrival order, each answered.

Faults never leave the thread: a failed open or read closes the source, publishes the
camera's availability ``offline`` with the cause, and schedules a reopen with exponential
backoff. A capture request arriving meanwhile may trigger an early reopen (at most once
per ``reopen.min_delay``), otherwise it is answered at once with the cause.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import Any

from printmesh_camera.config import CameraConfig
from printmesh_camera.jobs import Backoff, CaptureJob, Sink, load_imaging
from printmesh_camera.sources import Frame, MissingDependency, SizeHint, Source, SourceError, describe, make_source
from printmesh_core.commands import error
from printmesh_core.models.camera import CaptureResult
from printmesh_core.models.envelope import CommandResponse

log = logging.getLogger("printmesh.camera")

CHECK_EVERY = 1.0  # seconds between cheap source.check() calls


class CameraWorker:
    def __init__(
        self, config: CameraConfig, sink: Sink, factory: Callable[[Any, SizeHint], Source] = make_source
    ) -> None:
        self.config = config
        self.name = config.name
        self.sink = sink
        self.factory = factory
        self.description = describe(config.source)
        swap = config.rotation in (90, 270)
        self.hint = SizeHint(config.height if swap else config.width, config.width if swap else config.height)
        self.online = False
        self.reason: str | None = "starting"
        self.captures = self.failures = 0
        self.frame_size: tuple[int, int] | None = None
        self._imaging: ModuleType | None = None
        self._source: Source | None = None
        self._jobs: deque[CaptureJob] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._backoff = Backoff(config.reopen.min_delay, config.reopen.max_delay)
        now = time.monotonic()
        self._next_open = self._next_preview = self._next_check = self._last_read = now
        self._last_attempt = -1e9
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)

    # ------------------------------------------------------------- any thread
    def start(self) -> None:
        self._thread.start()

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def submit(self, job: CaptureJob) -> CommandResponse | None:
        """Queue a capture; returns the error response instead when it cannot be queued."""
        with self._cond:
            if self._stopping:
                return error(job.request.id, "shutting_down", f"camera {self.name!r}: the agent is stopping")
            if len(self._jobs) >= self.config.max_pending:
                return error(job.request.id, "busy", f"camera {self.name!r}: {len(self._jobs)} capture requests "
                             "already waiting (camera.max_pending); try again later")  # fmt: skip
            self._jobs.append(job)
            self._cond.notify()
        return None

    def request_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        source = self._source
        if source is not None:
            source.interrupt()  # a read waiting on the network returns now

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the thread (a device stuck in grab() may outlast ``timeout``), then answer what is left."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._fail_pending("shutting_down", "the agent is stopping")

    # ---------------------------------------------------------- worker thread
    def _run(self) -> None:
        self.sink.availability(self.name, False, "starting")
        try:
            while not self._stopping:
                try:
                    self._tick()
                except Exception as exc:  # a bug must not end the camera: treat it as a fault
                    log.exception("camera %s: unexpected error", self.name)
                    self._broken(SourceError(f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            self._close()
            self._fail_pending("shutting_down", "the agent is stopping")

    def _tick(self) -> None:
        now = time.monotonic()
        if self._source is None and now >= self._next_open:
            self._open()
        elif self._source is not None and now >= self._next_check:
            self._next_check = now + CHECK_EVERY
            try:
                self._source.check()
            except SourceError as exc:
                self._broken(exc)
        job = self._take(self._idle_wait())
        if job is not None:
            self._serve(job)
        elif self._source is not None and self.config.preview.interval > 0 and time.monotonic() >= self._next_preview:
            self._preview()
        elif self._source is not None and self._probe_due():
            self._read(time.monotonic(), None)

    def _probe_due(self) -> bool:
        interval = self.config.health_interval
        return interval > 0 and time.monotonic() - self._last_read >= interval

    def _idle_wait(self) -> float:
        """Seconds until the next scheduled thing (reopen, check, preview, probe); a job wakes us earlier."""
        if self._source is None:
            due = [self._next_open]
        else:
            due = [self._next_check]
            if self.config.preview.interval > 0:
                due.append(self._next_preview)
            if self.config.health_interval > 0:
                due.append(self._last_read + self.config.health_interval)
        return min(CHECK_EVERY, max(0.0, min(due) - time.monotonic()))

    def _take(self, wait: float) -> CaptureJob | None:
        with self._cond:
            if not self._jobs and wait > 0 and not self._stopping:
                self._cond.wait(wait)
            return self._jobs.popleft() if self._jobs and not self._stopping else None

    def _fail_pending(self, code: str, message: str) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            job.reply(error(job.request.id, code, f"camera {self.name!r}: {message}"))

    # ----------------------------------------------------------- source state
    def _open(self) -> None:
        self._last_attempt = time.monotonic()
        source: Source | None = None
        try:
            self._imaging = self._imaging or load_imaging()
            source = self.factory(self.config.source, self.hint)
            self.description = source.description
            source.open()
            self._source = source
            self.description = source.description
            self._warm_up()
        except SourceError as exc:
            if self._source is None and source is not None:
                self._safe_close(source)
            self._broken(exc)

    def _warm_up(self) -> None:
        """Throw frames away while auto-exposure settles, then go online; one read at least proves
        the source delivers. Instant sources (synthetic, files) are read at most 100 times a second."""
        assert self._source is not None
        until = time.monotonic() + self.config.effective_warmup
        while True:
            started = time.monotonic()
            if self._read(started, None, warming=True) is None:
                return  # broken: _read has handled it
            if time.monotonic() >= until or self._stopping:
                break
            time.sleep(max(0.0, 0.01 - (time.monotonic() - started)))
        self._mark_online()

    def _read(self, after: float, label: str | None, warming: bool = False) -> Frame | None:
        """A frame from the open source, or None after handling the fault."""
        assert self._source is not None
        try:
            frame = self._source.read(after, label)
        except SourceError as exc:
            self._broken(exc)
            return None
        self._last_read = time.monotonic()
        if not self.online and not warming:
            self._mark_online()
        return frame

    def _mark_online(self) -> None:
        if self.online:
            return
        if self._backoff.attempts:
            log.info("camera %s is back online (%s)", self.name, self.description)
        self._backoff.reset()
        self.online, self.reason = True, None
        self._next_preview = time.monotonic()
        self.sink.availability(self.name, True, None)

    def _broken(self, exc: SourceError) -> None:
        self._close()
        delay = self._backoff.next()
        if isinstance(exc, MissingDependency):
            delay = self.config.reopen.max_delay  # nothing changes until someone installs it
        self._next_open = time.monotonic() + delay
        reason = f"{self.description}: {exc}"
        level = logging.WARNING if reason != self.reason or self.online else logging.DEBUG
        log.log(level, "camera %s offline: %s; reopening in %.3g s", self.name, reason, delay)
        self.online, self.reason = False, reason
        self.sink.availability(self.name, False, reason)

    def _close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            self._safe_close(source)

    def _safe_close(self, source: Source) -> None:
        try:
            source.close()
        except Exception as exc:  # closing a dead device may raise; it is closed either way
            log.debug("camera %s: close failed: %s", self.name, exc)

    # --------------------------------------------------------------- frames
    def _serve(self, job: CaptureJob) -> None:
        """Answer one capture request, whatever happens; the image goes out before the answer."""
        result: CaptureResult | None = None
        try:
            response, result = self._capture(job)
        except Exception as exc:
            log.exception("camera %s: capture %s failed", self.name, job.request.id)
            response = error(job.request.id, "failed", f"camera {self.name!r}: {type(exc).__name__}: {exc}")
        if response.ok:
            self.captures += 1
        else:
            self.failures += 1
        job.reply(response)
        if result is not None:
            self.sink.captured(result)

    def _capture(self, job: CaptureJob) -> tuple[CommandResponse, CaptureResult | None]:
        request = job.request
        if self._source is None and time.monotonic() - self._last_attempt >= self.config.reopen.min_delay:
            self._open()  # a request may speed up recovery, but never faster than reopen.min_delay
        if self._source is None:
            return error(request.id, "source_error", f"camera {self.name!r} is offline: {self.reason}"), None
        frame = self._read(job.received, request.label)
        if frame is None:
            return error(request.id, "source_error", f"camera {self.name!r}: {self.reason}"), None
        assert self._imaging is not None
        image = self._imaging.orient(frame.image, self.config.rotation, self.config.flip)
        self.frame_size = (image.shape[1], image.shape[0])
        if request.width or request.height:
            image = self._imaging.resize(image, request.width, request.height)
        else:
            image = self._imaging.resize(image, self.config.width, self.config.height)
        quality = request.quality or self.config.quality
        jpeg: bytes = self._imaging.encode_jpeg(image, quality)
        height, width = image.shape[:2]
        topic = self.sink.image(self.name, job.capture_id, jpeg, job.correlation_data)
        time.sleep(0)  # yield the GIL: paho's network thread writes the image now, not after the answer is built
        result = CaptureResult(
            capture_id=job.capture_id, request_id=request.id, camera=self.name, topic=topic,
            timestamp=round(frame.wall, 3), width=width, height=height, size=len(jpeg),
            sha256=hashlib.sha256(jpeg).hexdigest(), quality=quality, label=request.label, sequence=frame.sequence,
            source=self.description, geometry=self.config.effective_geometry,
        )  # fmt: skip
        return CommandResponse(id=request.id, ok=True, data=result.model_dump(mode="json")), result

    def _preview(self) -> None:
        interval = self.config.preview.interval
        now = time.monotonic()
        following = self._next_preview + interval
        self._next_preview = following if following > now else now + interval  # late: no burst to catch up
        frame = self._read(now, None)
        if frame is None or self._imaging is None:
            return
        image = self._imaging.orient(frame.image, self.config.rotation, self.config.flip)
        self.frame_size = (image.shape[1], image.shape[0])
        width = min(self.config.preview.width, image.shape[1])
        image = self._imaging.resize(image, width, None)
        self.sink.preview(self.name, self._imaging.encode_jpeg(image, self.config.preview.quality))
