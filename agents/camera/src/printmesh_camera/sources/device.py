"""A V4L2 camera (``/dev/videoN`` or an index) through OpenCV.

The well-known pitfall: V4L2 keeps filling a queue of buffers (4 by default) whether or
not anyone reads, and when all are full the driver stops or recycles them, so the first
``read()`` after an idle minute returns a frame from a minute ago. Against that:

* ask for ``CAP_PROP_BUFFERSIZE`` = 1 (honoured by the V4L2 backend; harmless elsewhere);
* drain: ``grab()`` without decoding until a frame produced after the request comes up.
  A frame is known fresh when the buffer's timestamp (``CAP_PROP_POS_MSEC``, the V4L2
  CLOCK_MONOTONIC stamp, the same clock as ``time.monotonic()``) is later than the request,
  or, when the driver gives no usable stamp, when ``grab()`` had to wait for the sensor
  (blocked for at least half a frame interval) instead of returning a queued buffer;
* only the chosen frame is decoded (``retrieve()``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import cv2

from printmesh_camera.config import DeviceSourceConfig
from printmesh_camera.sources.base import Frame, SizeHint, Source, SourceError, wall_from_monotonic

log = logging.getLogger("printmesh.camera")

DEFAULT_FPS = 30.0
STAMP_PLAUSIBLE = 10.0  # seconds: buffer stamps further than this from time.monotonic() are not on that clock


def _open_v4l2(device: int | str) -> Any:
    return cv2.VideoCapture(device, cv2.CAP_V4L2)


class DeviceSource(Source):
    def __init__(
        self, config: DeviceSourceConfig, hint: SizeHint, capture_factory: Callable[[int | str], Any] | None = None
    ) -> None:
        self.config = config
        self.hint = hint
        self.path = config.device if isinstance(config.device, str) else f"/dev/video{config.device}"
        self.description = f"device {config.device}"
        self._factory = capture_factory or _open_v4l2
        self._cap: Any = None
        self._fps = DEFAULT_FPS

    def open(self) -> None:
        if not os.path.exists(self.path):
            raise SourceError("no such device (unplugged?)")
        cap = self._factory(self.config.device)
        if cap is None or not cap.isOpened():
            raise SourceError("cannot open: busy, no permission (video group?) or not a capture device")
        cfg = self.config
        if cfg.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.fourcc))
        if self.hint.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.hint.width)
        if self.hint.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.hint.height)
        if cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, cfg.buffer_size)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if fps and 0 < fps < 1000 else (cfg.fps or DEFAULT_FPS)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        log.info("%s: %dx%d at %.3g fps (asked %sx%s at %s)", self.description, width, height, self._fps,
                 self.hint.width, self.hint.height, cfg.fps)  # fmt: skip
        self._cap = cap

    def check(self) -> None:
        if self._cap is not None and not os.path.exists(self.path):
            raise SourceError("the device disappeared (unplugged?)")

    def _buffer_time(self) -> float | None:
        """The grabbed buffer's CLOCK_MONOTONIC stamp in seconds, if the driver gives a plausible one."""
        stamp = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        return stamp if stamp > 0 and abs(stamp - time.monotonic()) < STAMP_PLAUSIBLE else None

    def read(self, after: float, label: str | None = None) -> Frame:
        cap = self._cap
        if cap is None:
            raise SourceError("not open")
        blocked = 0.5 / self._fps
        stamp: float | None = None
        for _ in range(self.config.drain + 1):
            started = time.monotonic()
            if not cap.grab():
                raise SourceError("stopped delivering frames (grab failed: unplugged or driver error)")
            stamp = self._buffer_time()
            if stamp is not None:
                if stamp >= after:
                    break  # produced after the request
            elif time.monotonic() - started >= blocked and started >= after:
                break  # we waited for the sensor: the frame was finished after the request
        ok, image = cap.retrieve()
        if not ok or image is None:
            raise SourceError("a frame was grabbed but could not be decoded")
        return Frame(image, wall_from_monotonic(stamp) if stamp is not None else time.time())

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
