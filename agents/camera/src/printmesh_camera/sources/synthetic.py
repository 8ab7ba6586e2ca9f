"""The synthetic camera: a test pattern with the time, a frame counter and the request's label.

It ships with the agent so everything downstream (Home Assistant, the coordinator, the
tests, the benchmarks) can run without a webcam. Each frame is rendered when it is read,
and then goes through the same rotate/flip/resize/JPEG path as a real camera's frames.

It behaves like a camera running at ``fps``: frame ``k`` is produced at ``start + k/fps``
and a read waits for the first frame produced after the request (at most one frame
interval), so freshness and ordering can be checked. ``fps: 0`` renders at once.

What is drawn, for people and for machines:

* human-readable text: UTC time with milliseconds, ``frame <counter>``, ``label: <label>``;
* the same counter, time and label in the machine-readable stamp at the bottom
  (:mod:`printmesh_camera.framecode`). The coordinator's end-to-end test relies on it:
  the label it puts in a capture request must come back drawn on that capture, so it can
  check that "its drawn label shows the right layer and grid index". Keep the label
  encoding backwards compatible.

``offline_flag`` makes the camera behave as unplugged while that file exists: opening and
reading fail with the cause, which exercises the agent's fault handling end to end.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import cv2
import numpy as np

from printmesh_camera.config import SyntheticSourceConfig
from printmesh_camera.framecode import Stamp, band_rows, draw
from printmesh_camera.sources.base import Frame, Image, Pacer, SizeHint, Source, SourceError

DEFAULT_SIZE = (1280, 720)
_BARS = [(192, 192, 192), (0, 192, 192), (192, 192, 0), (0, 192, 0), (192, 0, 192), (0, 0, 192), (192, 0, 0)]


def test_pattern(width: int, height: int) -> Image:
    """Colour bars over a grey ramp; the bottom band is left for the stamp."""
    image = np.empty((height, width, 3), np.uint8)
    bars_bottom = int(height * 0.45)
    edges = np.linspace(0, width, len(_BARS) + 1).astype(int)
    for (b, g, r), x0, x1 in zip(_BARS, edges[:-1], edges[1:], strict=True):
        image[:bars_bottom, x0:x1] = (b, g, r)
    ramp = np.linspace(16, 235, width).astype(np.uint8)
    image[bars_bottom:] = ramp[None, :, None]
    return image


class SyntheticSource(Source):
    def __init__(self, config: SyntheticSourceConfig, hint: SizeHint) -> None:
        self.config = config
        self.width = hint.width or (round(hint.height * 16 / 9) if hint.height else DEFAULT_SIZE[0])
        self.height = hint.height or (round(self.width * 9 / 16) if hint.width else DEFAULT_SIZE[1])
        self.description = f"synthetic {config.fps:g} fps" if config.fps else "synthetic (unpaced)"
        self._pattern: Image | None = None
        self._pacer = Pacer(config.fps)
        self._counter = -1

    def _flag_check(self) -> None:
        flag = self.config.offline_flag
        if flag is not None and flag.exists():
            raise SourceError(f"simulated unplug: {flag} exists")

    def open(self) -> None:
        self._flag_check()
        self._pattern = test_pattern(self.width, self.height)
        self._pacer = Pacer(self.config.fps)
        self._counter = -1

    def check(self) -> None:
        self._flag_check()

    def read(self, after: float, label: str | None = None) -> Frame:
        self._flag_check()
        if self._pattern is None:
            raise SourceError("not open")
        counter, due = self._pacer.slot(after, self._counter)
        Pacer.wait_until(due)
        self._counter = counter
        wall = time.time()
        return Frame(self.render(counter, wall, label or ""), wall, counter)

    def render(self, counter: int, wall: float, label: str) -> Image:
        assert self._pattern is not None
        image = self._pattern.copy()
        width, height = self.width, self.height
        top, _ = band_rows(height)
        # a block that moves one step per frame, so consecutive frames differ visibly
        step = max(1, width // 64)
        x = (counter * step) % max(1, width - 4 * step)
        cv2.rectangle(image, (x, top - 3 * step), (x + 4 * step, top - step), (255, 255, 255), -1)
        scale = max(0.4, width / 1280 * 1.2)
        thick = max(1, round(scale * 2))
        stamp_time = round(wall, 3)
        when = datetime.fromtimestamp(stamp_time, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
        lines = [when, f"frame {counter}"] + ([f"label: {label}"] if label else [])
        y = int(height * 0.45) + round(40 * scale)
        for text in lines:
            cv2.putText(image, text, (round(16 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 3,
                        cv2.LINE_AA)  # fmt: skip
            cv2.putText(image, text, (round(16 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick,
                        cv2.LINE_AA)  # fmt: skip
            y += round(40 * scale)
        draw(image, Stamp(counter, stamp_time, label))
        return image

    def close(self) -> None:
        self._pattern = None
