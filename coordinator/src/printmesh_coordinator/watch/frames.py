"""Images made comparable: decoded small and grey, brightness normalised, aligned to a reference.

Everything the watch compares is a small grey image (``WIDTH`` pixels wide): a JPEG is
decoded straight at a reduced size (libjpeg's DCT scaling, far cheaper than a full decode),
and the brightness is divided by a robust level so slow lighting drift cancels out.
Alignment is a phase correlation: whole-image translation, enough for the small pose
jitter of a head camera that returns to the same grid point.
"""

from __future__ import annotations

import cv2
import numpy as np

Gray = np.ndarray  # float32 (h, w), brightness normalised
WIDTH = 320  # pixels of the images compared


def decode(image: np.ndarray | bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """(grey uint8 about ``WIDTH`` wide, full (width, height)) of a BGR/grey array or JPEG bytes."""
    if isinstance(image, bytes | bytearray | memoryview):
        data = np.frombuffer(image, np.uint8)
        small = None
        for flag, factor in ((cv2.IMREAD_REDUCED_GRAYSCALE_4, 4), (cv2.IMREAD_REDUCED_GRAYSCALE_2, 2)):
            small = cv2.imdecode(data, flag)
            if small is not None and small.shape[1] >= WIDTH:
                full = (small.shape[1] * factor, small.shape[0] * factor)
                return _resize(small), full
        small = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
        if small is None:
            raise ValueError("not a decodable image")
        return _resize(small), (small.shape[1], small.shape[0])
    array = np.asarray(image)
    grey = cv2.cvtColor(array, cv2.COLOR_BGR2GRAY) if array.ndim == 3 else array
    if grey.dtype != np.uint8:
        grey = np.clip(grey, 0, 255).astype(np.uint8)
    return _resize(grey), (grey.shape[1], grey.shape[0])


def _resize(grey: np.ndarray) -> np.ndarray:
    height, width = grey.shape[:2]
    if width == WIDTH:
        return grey
    size = (WIDTH, max(1, round(height * WIDTH / width)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def level(grey: np.ndarray) -> float:
    """A robust brightness level of an image (its upper-middle percentile)."""
    return float(np.percentile(grey[::2, ::2], 75))


def normalised(grey: np.ndarray) -> Gray:
    """Brightness divided by the image's level: a global gain (lighting drift) cancels out."""
    scale = 100.0 / max(level(grey), 4.0)
    out: Gray = grey.astype(np.float32) * scale
    return out


def align(current: Gray, reference: Gray) -> tuple[Gray, tuple[float, float], float]:
    """``current`` moved onto ``reference`` (phase correlation), the shift found, and its response."""
    window = _window(current.shape)
    (dx, dy), response = cv2.phaseCorrelate(reference, current, window)
    if abs(dx) < 0.05 and abs(dy) < 0.05:
        return current, (0.0, 0.0), float(response)
    matrix = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]], np.float32)
    height, width = current.shape
    moved = cv2.warpAffine(current, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return moved, (float(dx), float(dy)), float(response)


_WINDOWS: dict[tuple[int, ...], np.ndarray] = {}


def _window(shape: tuple[int, ...]) -> np.ndarray:
    if shape not in _WINDOWS:
        _WINDOWS[shape] = cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)
    return _WINDOWS[shape]
