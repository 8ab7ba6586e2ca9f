"""A machine-readable stamp in a frame: counter, time and label as a block of black/white cells.

Why: tests (ours, and the coordinator's end-to-end test, which must check that "its drawn
label shows the right layer and grid index") have to read what the synthetic camera drew,
without OCR. The stamp is a band at the bottom of the frame, 64 x 8 cells, each cell one
bit. Its geometry is relative to the image (full width, bottom 20 % of the height), so it
survives JPEG compression, any resize (down to about 192 px wide) and any rotation or flip
the camera applies: ``decode`` tries the eight orientations and accepts the one whose magic
and CRC-32 match.

Layout (64 bytes, big-endian, most significant bit first, row by row from the top left):
magic ``0xC0DE`` (2) | version 1 (1, bit 7 = label truncated) | counter mod 2**32 (4) |
Unix time in ms (6) | label length (1) | label, UTF-8, zero-padded (44) | CRC-32 of the
previous 58 bytes (4) | zero padding (2).

Usable from any test: ``from printmesh_camera.framecode import decode``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from printmesh_camera.sources.base import Image

COLS = 64
ROWS = 8
BAND = 0.20  # fraction of the image height, at the bottom
MAGIC = 0xC0DE
VERSION = 1
LABEL_BYTES = 44
_TRUNCATED = 0x80
_HEAD = struct.Struct(">HBI6sB")


@dataclass(frozen=True)
class Stamp:
    counter: int
    time: float  # Unix seconds, millisecond precision
    label: str
    truncated: bool = False  # the label was longer than 44 UTF-8 bytes and was cut
    orientation: str = "as drawn"  # how ``decode`` had to turn the image to read it


def _label_bytes(label: str) -> tuple[bytes, bool]:
    raw = label.encode()
    if len(raw) <= LABEL_BYTES:
        return raw, False
    return raw[:LABEL_BYTES].decode(errors="ignore").encode(), True


def pack(stamp: Stamp) -> bytes:
    label, truncated = _label_bytes(stamp.label)
    version = VERSION | (_TRUNCATED if truncated or stamp.truncated else 0)
    millis = round(stamp.time * 1000).to_bytes(6, "big")
    body = _HEAD.pack(MAGIC, version, stamp.counter % 2**32, millis, len(label)) + label.ljust(LABEL_BYTES, b"\0")
    return body + struct.pack(">I", zlib.crc32(body)) + b"\0\0"


def unpack(data: bytes) -> Stamp | None:
    """The stamp in 64 bytes, or None when the magic or the CRC does not match."""
    size = _HEAD.size + LABEL_BYTES
    body, crc = data[:size], data[size : size + 4]
    magic, version, counter, millis, length = _HEAD.unpack_from(body)
    if magic != MAGIC or (version & 0x7F) != VERSION or length > LABEL_BYTES:
        return None
    if struct.unpack(">I", crc)[0] != zlib.crc32(body):
        return None
    label = body[_HEAD.size : _HEAD.size + length].decode(errors="replace")
    return Stamp(counter, int.from_bytes(millis, "big") / 1000, label, bool(version & _TRUNCATED))


def band_rows(height: int) -> tuple[int, int]:
    """First and last+1 pixel rows of the stamp band in an image ``height`` pixels high."""
    return height - max(ROWS, round(height * BAND)), height


def draw(image: Image, stamp: Stamp) -> None:
    """Paint the stamp into the bottom band of a BGR image, in place."""
    bits = np.unpackbits(np.frombuffer(pack(stamp), np.uint8)).reshape(ROWS, COLS) * np.uint8(255)
    top, bottom = band_rows(image.shape[0])
    cells = cv2.resize(bits, (image.shape[1], bottom - top), interpolation=cv2.INTER_NEAREST)
    image[top:bottom] = cells[:, :, None]


def _orientations(image: Image) -> Iterator[tuple[str, Image]]:
    """The image turned back by each of the 8 rotations/flips a camera can apply."""
    turns: list[tuple[str, Callable[[Image], Image]]] = [
        ("as drawn", lambda i: i),
        ("rotated 180", lambda i: cv2.rotate(i, cv2.ROTATE_180)),
        ("flipped horizontally", lambda i: cv2.flip(i, 1)),
        ("flipped vertically", lambda i: cv2.flip(i, 0)),
        ("rotated 90", lambda i: cv2.rotate(i, cv2.ROTATE_90_COUNTERCLOCKWISE)),
        ("rotated 270", lambda i: cv2.rotate(i, cv2.ROTATE_90_CLOCKWISE)),
        ("rotated 90 and flipped", lambda i: cv2.rotate(cv2.flip(i, 1), cv2.ROTATE_90_COUNTERCLOCKWISE)),
        ("rotated 270 and flipped", lambda i: cv2.rotate(cv2.flip(i, 1), cv2.ROTATE_90_CLOCKWISE)),
    ]
    for name, turn in turns:
        yield name, turn(image)


def read_band(image: Image) -> bytes:
    """The 64 bytes in the band of an image drawn upright: each cell averaged, then thresholded."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    top, bottom = band_rows(gray.shape[0])
    cells = cv2.resize(gray[top:bottom], (COLS, ROWS), interpolation=cv2.INTER_AREA)
    return np.packbits(cells >= 128).tobytes()


def decode(image: Image) -> Stamp | None:
    """The stamp in a frame (BGR or grayscale, any size or orientation), or None if there is none."""
    for name, upright in _orientations(image):
        stamp = unpack(read_band(upright))
        if stamp is not None:
            return Stamp(stamp.counter, stamp.time, stamp.label, stamp.truncated, name)
    return None


def decode_jpeg(data: bytes) -> Stamp | None:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else decode(image)
