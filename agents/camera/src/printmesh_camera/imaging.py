"""Frame geometry and JPEG encoding: what happens to every frame between source and MQTT.

Imported by the worker only once a camera has a frame, so it may import OpenCV at the top.
Order: rotation (clockwise), then flip, then resize. ``resize`` keeps the aspect ratio
when only one side is given, and uses INTER_AREA to shrink (no aliasing on previews).
"""

from __future__ import annotations

import contextlib
import logging

import cv2

from printmesh_camera.sources.base import Image, SourceError

log = logging.getLogger("printmesh.camera")

_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
_FLIP = {"horizontal": 1, "vertical": 0}

# OpenCV prints its own warnings (e.g. "can't open camera by index"); our errors say it better
with contextlib.suppress(AttributeError):  # very old OpenCV builds lack cv2.utils.logging
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def orient(image: Image, rotation: int, flip: str) -> Image:
    """Rotate clockwise by ``rotation`` degrees, then mirror (printer webcams hang upside down)."""
    if rotation in _ROTATE:
        image = cv2.rotate(image, _ROTATE[rotation])
    if flip in _FLIP:
        image = cv2.flip(image, _FLIP[flip])
    return image


def target_size(width: int, height: int, want_w: int | None, want_h: int | None) -> tuple[int, int]:
    """The output size: as asked, or following the aspect ratio when only one side is given."""
    if want_w and want_h:
        return want_w, want_h
    if want_w:
        return want_w, max(1, round(height * want_w / width))
    if want_h:
        return max(1, round(width * want_h / height)), want_h
    return width, height


def resize(image: Image, want_w: int | None, want_h: int | None) -> Image:
    height, width = image.shape[:2]
    size = target_size(width, height, want_w, want_h)
    if size == (width, height):
        return image
    shrinking = size[0] * size[1] < width * height
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def encode_jpeg(image: Image, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SourceError(f"JPEG encoding failed for a {image.shape[1]}x{image.shape[0]} frame")
    return buf.tobytes()


def decode_jpeg(data: bytes, what: str) -> Image:
    """Decode JPEG bytes from a URL source; a broken image is the source's fault."""
    import numpy as np

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{what} is not a decodable JPEG ({len(data)} bytes)")
    return image
