"""One timelapse per grid position and camera: its frames in layer order, as VP8 in WebM.

VP8/WebM is what both OpenCV's headless wheel can write and Chromium can play (the wheel
has no H.264, and mp4v does not play in browsers). Every frame is fitted to the first
frame's size (at most 1280×720, even sides), so a camera whose size changed mid-job still
gives one playable video. The file is written under a hidden temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

FOURCC = "VP80"
MAX_SIZE = (1280, 720)
Frame = npt.NDArray[np.uint8]


class Aborted(Exception):
    """The coordinator is stopping: the video was dropped, nothing half-written is left."""


def frame_rate(frames: int) -> float:
    """About four seconds per video, between 2 and 24 frames per second."""
    return float(max(2, min(24, round(frames / 4))))


def fitted_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, MAX_SIZE[0] / width, MAX_SIZE[1] / height)
    w, h = max(2, int(width * scale)), max(2, int(height * scale))
    return w - w % 2, h - h % 2


def _fit(frame: Frame, size: tuple[int, int]) -> Frame:
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def encode(images: Sequence[Path], target: Path, stop: threading.Event | None = None) -> int:
    """Write ``images`` (unreadable ones skipped) to ``target``; the number of frames written."""
    size: tuple[int, int] | None = None
    writer: cv2.VideoWriter | None = None
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp.webm", dir=target.parent)
    os.close(fd)
    written = 0
    try:
        for path in images:
            if stop is not None and stop.is_set():
                raise Aborted(str(target))
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                continue
            if writer is None:
                size = fitted_size(frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(tmp, cv2.VideoWriter.fourcc(*FOURCC), frame_rate(len(images)), size)
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write {FOURCC} WebM here (is this opencv-python-headless?)")
            assert size is not None
            writer.write(_fit(np.asarray(frame, dtype=np.uint8), size))
            written += 1
        if writer is not None:
            writer.release()
            writer = None
        if written:
            os.chmod(tmp, 0o644)  # served with the page
            os.replace(tmp, target)
        return written
    finally:
        if writer is not None:
            writer.release()
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def count_frames(path: Path) -> int:
    """Frames decoded back from a video (the container's own count is not always there)."""
    capture = cv2.VideoCapture(str(path))
    frames = 0
    try:
        while capture.read()[0]:
            frames += 1
    finally:
        capture.release()
    return frames
