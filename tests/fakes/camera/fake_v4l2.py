"""A stand-in for ``cv2.VideoCapture`` on a V4L2 device, for the drain logic of the device source.

It behaves like the kernel's buffer queue: the sensor finishes a frame every ``1/fps`` s;
finished frames wait in ``buffers`` slots, and when all are full the newest are dropped
(the oldest stay queued: exactly why a plain read() after an idle minute is a minute
old). ``grab()`` takes the oldest queued frame at once, or blocks for the next one.
With ``stamps=True``, CAP_PROP_POS_MSEC gives the CLOCK_MONOTONIC time of the grabbed
frame, as the real V4L2 backend does; with ``stamps=False`` it gives 0.
"""

from __future__ import annotations

import time

import cv2
import numpy as np


class FakeV4l2Capture:
    def __init__(
        self, fps: float = 20.0, buffers: int = 4, stamps: bool = True, fail_after: float | None = None
    ) -> None:
        self.fps, self.buffers, self.stamps = fps, buffers, stamps
        self.start = time.monotonic()
        self.produced = 0  # frames 0..produced-1 have been finished by the sensor (queued or dropped)
        self.queue: list[int] = []
        self.grabbed: int | None = None
        self.fail_at = None if fail_after is None else self.start + fail_after
        self.props: dict[int, float] = {}
        self.opened = True
        self.grabs = 0

    def _done(self, k: int) -> float:
        """When the sensor finishes frame k."""
        return self.start + (k + 1) / self.fps

    def _advance(self) -> None:
        finished = int((time.monotonic() - self.start) * self.fps)
        for k in range(self.produced, finished):
            if len(self.queue) < self.buffers:
                self.queue.append(k)  # else: no free buffer, the frame is dropped
        self.produced = max(self.produced, finished)

    def isOpened(self) -> bool:
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        if prop == cv2.CAP_PROP_BUFFERSIZE:
            self.buffers = max(1, int(value))
        return True

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self._done(self.grabbed) * 1000 if self.stamps and self.grabbed is not None else 0.0
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        return self.props.get(prop, 0.0)

    def grab(self) -> bool:
        if self.fail_at is not None and time.monotonic() >= self.fail_at:
            return False
        self.grabs += 1
        self._advance()
        if not self.queue:
            time.sleep(max(0.0, self._done(self.produced) - time.monotonic()))
            self._advance()
        self.grabbed = self.queue.pop(0)
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        if self.grabbed is None:
            return False, None
        image = np.full((48, 64, 3), self.grabbed % 256, np.uint8)
        return True, image

    def release(self) -> None:
        self.opened = False
