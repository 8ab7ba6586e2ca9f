"""Images made comparable: decoded small, brightness normalised, the part's pixels found, aligned.

Everything the watch compares is small (``WIDTH`` pixels wide): a JPEG is decoded straight
at a reduced size (libjpeg's DCT scaling, far cheaper than a full decode), and the grey
level is divided by a robust level of the image so slow lighting drift cancels out.
The part is told from the bed by its colour (filament is coloured, a bed and an enclosure
are mostly grey): saturated, not dark. The colour is white-balanced on the scene first: a
tinted light (a warm lamp at night, daylight by day) makes the whole bed look slightly
coloured, and a grey bed read as "maybe part" would count as growth everywhere. Alignment is
a phase correlation, a whole-image translation: enough for the small pose jitter of a head
camera back at the same grid point.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTH = 320  # pixels of the images compared
SATURATION = (100, 80)  # HSV saturation (0-255) of filament: surely, possibly (a thin line in a dim frame)
DARK = (40, 30)  # HSV value below which nothing counts as part: surely, possibly
SCENE = 40.0 * float(np.log(120.0))  # the compressed level of the bed and enclosure
MIN_RESPONSE = 0.2  # phase correlation peak below which no shift is trusted
MAX_SHIFT = 4.0  # small pixels: a larger "jitter" is not jitter, the comparison is left unaligned


@dataclass(frozen=True)
class Small:
    grey: np.ndarray  # float32, brightness normalised (scene level 100), log-compressed (``SCENE``)
    part: np.ndarray  # uint8 mask (255): the part's pixels, by colour
    maybe: np.ndarray  # uint8 mask: pixels that may be part (looser thresholds); a superset of ``part``
    full: tuple[int, int]  # width, height of the image as captured
    black: bool
    chroma: np.ndarray | None = None  # float32: max - min of B, G, R (white-balanced), normalised like grey


def decode(image: np.ndarray | bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """(BGR uint8 about ``WIDTH`` wide, full (width, height)) of a BGR/grey array or JPEG bytes."""
    if isinstance(image, bytes | bytearray | memoryview):
        data = np.frombuffer(image, np.uint8)
        if data.size == 0:
            raise ValueError("an empty image")
        for flag, factor in ((cv2.IMREAD_REDUCED_COLOR_4, 4), (cv2.IMREAD_REDUCED_COLOR_2, 2), (cv2.IMREAD_COLOR, 1)):
            small = cv2.imdecode(data, flag)
            if small is None:
                raise ValueError("not a decodable image")
            if small.shape[1] >= WIDTH or factor == 1:
                return _resize(small), (small.shape[1] * factor, small.shape[0] * factor)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise ValueError(f"expected a BGR or grey image, got shape {array.shape}")
    return _resize(array), (array.shape[1], array.shape[0])


def _resize(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    if width == WIDTH:
        return image
    size = (WIDTH, max(1, round(height * WIDTH / width)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def balanced(bgr: np.ndarray) -> np.ndarray:
    """``bgr`` with the scene made grey: each channel scaled so the least coloured half of the
    pixels (the bed and enclosure, unless the part fills half the view) has equal medians."""
    sample = np.ascontiguousarray(bgr[::4, ::4])
    chroma = _spread(sample)
    scene = sample[chroma <= np.median(chroma)]
    medians = np.median(scene, axis=0).astype(np.float32) if scene.size else np.zeros(3, np.float32)
    if float(medians.min()) < 8.0:  # too dark to tell a tint
        return bgr
    gains = np.clip(float(medians.mean()) / medians, 0.7, 1.4)
    if float(np.abs(gains - 1.0).max()) < 0.01:
        return bgr
    lut = np.clip(np.arange(256, dtype=np.float32)[:, None] * gains[None, :], 0, 255).astype(np.uint8)
    out: np.ndarray = cv2.LUT(bgr, lut[:, None, :])
    return out


def _spread(bgr: np.ndarray) -> np.ndarray:
    """max - min of the three channels, per pixel (OpenCV: numpy reduces a last axis of 3 slowly)."""
    b, g, r = cv2.split(bgr)
    out: np.ndarray = cv2.subtract(cv2.max(cv2.max(b, g), r), cv2.min(cv2.min(b, g), r))
    return out


def prepare(bgr: np.ndarray, full: tuple[int, int]) -> Small:
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    black = float(grey.mean()) < 12.0 and float(grey.std()) < 12.0
    colour = balanced(bgr)
    hsv = cv2.cvtColor(cv2.medianBlur(colour, 3), cv2.COLOR_BGR2HSV)
    part = np.where((hsv[:, :, 1] > SATURATION[0]) & (hsv[:, :, 2] > DARK[0]), 255, 0).astype(np.uint8)
    maybe = np.where((hsv[:, :, 1] > SATURATION[1]) & (hsv[:, :, 2] > DARK[1]), 255, 0).astype(np.uint8)
    scene = grey[::2, ::2][part[::2, ::2] == 0]  # the level of the bed and enclosure: the part grows, they stay
    level = float(np.median(scene)) if scene.size > 100 else float(np.median(grey))
    norm = cv2.GaussianBlur(grey.astype(np.float32) * (100.0 / max(level, 4.0)), (3, 3), 0)
    # compressed: a tinted light changes a bright part's level by more grey levels than the bed's
    compressed: np.ndarray = cv2.log(norm + 20.0) * 40.0
    spread = _spread(colour).astype(np.float32) * (100.0 / max(level, 4.0))
    return Small(compressed, part, maybe, full, black, spread)


def align(current: Small, reference: Small, expected: float = 0.0) -> tuple[float, float]:
    """The translation of ``current`` against ``reference`` (phase correlation), (0, 0) if implausible.

    The part is blanked out in both (to the scene's level): it changes every layer, the scene
    around it is what tells the camera's jitter. ``expected``: the scene's downward slide (small
    pixels) from the camera's rise since the reference; the jitter is measured around it."""
    kernel = np.ones((5, 5), np.uint8)
    a = np.where(cv2.dilate(current.part, kernel) > 0, np.float32(SCENE), current.grey)
    b = np.where(cv2.dilate(reference.part, kernel) > 0, np.float32(SCENE), reference.grey)
    a, b = cv2.GaussianBlur(a, (0, 0), 2.0), cv2.GaussianBlur(b, (0, 0), 2.0)  # the bed's grid is periodic
    (dx, dy), response = cv2.phaseCorrelate(b, a, _window(a.shape))
    if response < MIN_RESPONSE:
        return 0.0, 0.0
    if abs(dx) > MAX_SHIFT or abs(dy - expected) > MAX_SHIFT:
        return 0.0, 0.0
    return float(dx), float(dy)


def shifted(image: np.ndarray, shift: tuple[float, float], nearest: bool = False) -> np.ndarray:
    """``image`` moved back by ``shift``."""
    dx, dy = shift
    if abs(dx) < 0.25 and abs(dy) < 0.25:
        return image
    matrix = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]], np.float32)
    height, width = image.shape[:2]
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out: np.ndarray = cv2.warpAffine(image, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return out


_WINDOWS: dict[tuple[int, ...], np.ndarray] = {}


def _window(shape: tuple[int, ...]) -> np.ndarray:
    if shape not in _WINDOWS:
        _WINDOWS[shape] = cv2.createHanningWindow((shape[1], shape[0]), cv2.CV_32F)
    return _WINDOWS[shape]
