"""A video file played in a loop, standing in for a live camera.

With ``realtime`` (the default) the file plays against the wall clock at its frame rate,
like a camera that never stops: a capture gets the frame for "now", not the frame after
the one read last time. Reading frame after frame on request would be exactly the stale
buffer pitfall of real cameras. Short jumps forward are grabbed through (exact for every
codec); longer ones and the wrap-around seek with CAP_PROP_POS_FRAMES.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import cv2

from printmesh_camera.config import FileSourceConfig
from printmesh_camera.sources.base import Frame, Pacer, Source, SourceError

log = logging.getLogger("printmesh.camera")

DEFAULT_FPS = 10.0
MAX_GRAB_AHEAD = 30  # beyond this many frames ahead, seek instead of grabbing through


class FileSource(Source):
    def __init__(self, config: FileSourceConfig) -> None:
        self.config = config
        self.description = f"file {config.path}"
        self._cap: Any = None
        self._pos = 0  # index of the frame the next read() of the capture returns
        self._count = 0  # frames in the file; 0 = unknown (play sequentially)
        self._slot = -1  # last pacer slot delivered
        self._pacer = Pacer(DEFAULT_FPS)

    def open(self) -> None:
        path = self.config.path
        if not path.is_file():
            raise SourceError("no such file")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise SourceError("OpenCV cannot open it (not a video, or a codec its FFmpeg lacks)")
        fps = self.config.fps or cap.get(cv2.CAP_PROP_FPS)
        if not fps or not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = DEFAULT_FPS
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self._count = int(count) if count and math.isfinite(count) and count > 0 else 0
        self._cap, self._pos, self._slot = cap, 0, -1
        self._pacer = Pacer(fps)
        log.info("%s: %d frames at %.3g fps", self.description, self._count, fps)

    def read(self, after: float, label: str | None = None) -> Frame:
        if self._cap is None:
            raise SourceError("not open")
        if not self.config.realtime or self._count == 0:
            return self._next_frame()
        slot, due = self._pacer.slot(after, self._slot)
        Pacer.wait_until(due)
        self._slot = slot
        return self._frame_at(slot % self._count)

    def _frame_at(self, index: int) -> Frame:
        ahead = index - self._pos
        if ahead < 0 or ahead > MAX_GRAB_AHEAD:
            if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, index):
                raise SourceError(f"cannot seek to frame {index}")
            self._pos = index
        else:
            for _ in range(ahead):
                if not self._cap.grab():
                    break
                self._pos += 1
        ok, image = self._cap.read()
        if not ok or image is None:
            # the container announced more frames than it has: learn the real length
            if self._pos > 0 and self._count > self._pos:
                log.info("%s: only %d frames readable (header says %d)", self.description, self._pos, self._count)
                self._count = self._pos
                return self._frame_at(index % self._count)
            raise SourceError(f"cannot decode frame {index}")
        self._pos = index + 1
        return Frame(image, time.time(), index)

    def _next_frame(self) -> Frame:
        ok, image = self._cap.read()
        if not ok or image is None:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._pos = 0
            ok, image = self._cap.read()
            if not ok or image is None:
                raise SourceError("cannot read a frame after rewinding")
        index = self._pos
        self._pos += 1
        return Frame(image, time.time(), index)

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
