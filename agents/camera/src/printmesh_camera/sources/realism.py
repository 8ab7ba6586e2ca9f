"""What makes a rendered frame look like a camera's: optics blur, jitter, drift, noise, JPEG.

All of it is applied after the part is drawn (2D, cheap), so the cached part image stays
valid while the pose jitters and the light drifts. Randomness comes from ``(seed, frame)``:
the same seed and frame number give the same pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from printmesh_camera.sources.base import Image
from printmesh_camera.virtual_config import RealismConfig

NOISE_BANK = 4  # precomputed noise images, picked per frame


class Realism:
    def __init__(self, config: RealismConfig, seed: int, size: tuple[int, int]) -> None:
        self.config = config
        self.seed = seed
        width, height = size
        self._noise: list[tuple[Image, Image]] = []
        if config.noise > 0:
            rng = np.random.default_rng([seed, 7])
            for _ in range(NOISE_BANK):
                # luminance noise shared by the channels, plus a little chroma noise
                n = rng.standard_normal((height, width, 1), dtype=np.float32) * config.noise
                n = n + rng.standard_normal((height, width, 3), dtype=np.float32) * (config.noise * 0.4)
                n = np.clip(n, -127, 127)
                self._noise.append((np.maximum(n, 0).astype(np.uint8), np.maximum(-n, 0).astype(np.uint8)))

    def apply(self, image: Image, frame: int, elapsed: float) -> Image:
        """The frame as the camera delivers it; ``elapsed`` (seconds since open) drives the drift."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, frame])
        height, width = image.shape[:2]
        if cfg.jitter > 0:  # whole pixels: a resampled shift would blur thin lines differently every frame
            dx, dy = (int(v) for v in np.round(rng.normal(0, cfg.jitter, 2)))
            matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
            image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_NEAREST,
                                   borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        else:
            image = image.copy()
        if cfg.drift > 0:
            phase = 2 * math.pi * elapsed / cfg.drift_period + self.seed
            gain = 1.0 + cfg.drift * math.sin(phase)
            warm = cfg.drift * 0.5 * math.sin(phase * 0.61 + 1.0)
            ramp = np.arange(256, dtype=np.float32)[:, None] * np.array([1 - warm, 1.0, 1 + warm], np.float32) * gain
            image = cv2.LUT(image, np.clip(ramp, 0, 255).astype(np.uint8)[:, None, :])  # 3x faster than multiply
        if self._noise:
            plus, minus = self._noise[int(rng.integers(0, len(self._noise)))]
            cv2.add(image, plus, dst=image)
            cv2.subtract(image, minus, dst=image)
        if cfg.jpeg_quality is not None:
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
            if decoded is not None:
                image = decoded
        return image
