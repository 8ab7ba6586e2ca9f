"""MJPEG over HTTP (``multipart/x-mixed-replace``), parsed here rather than by OpenCV's FFmpeg.

Why a reader thread that keeps only the newest frame: an MJPEG server pushes frames
whether or not we read them. Reading only on request would leave seconds of old frames
queued in the socket (the stale-frame pitfall again) and make slow servers drop us. The
reader takes every part off the wire without decoding it (cheap: no JPEG work for frames
nobody asked for), remembers the newest one with the moment its first bytes were parsed,
and a capture waits for the first frame that *started* arriving after the request.

The parser accepts what mjpg-streamer, ustreamer, camera-streamer and OctoPrint's proxy
send: a boundary with or without a leading ``--`` in the header, parts with or without
Content-Length (without, the part ends at the next boundary), CRLF or LF line ends.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from printmesh_camera.config import UrlSourceConfig
from printmesh_camera.sources.base import SourceError
from printmesh_camera.sources.http import Opened, why

log = logging.getLogger("printmesh.camera")

CHUNK = 65536
MAX_PART = 32 * 1024 * 1024  # a part larger than this is not a camera frame
MAX_HEADER = 16384


def boundary_of(content_type: str) -> bytes | None:
    """The multipart boundary from a Content-Type header, without a leading ``--``."""
    if not content_type.lower().startswith("multipart/"):
        return None
    match = re.search(r'boundary\s*=\s*"?([^";]+)"?', content_type, re.IGNORECASE)
    return match.group(1).strip().removeprefix("--").encode() if match else None


class MultipartParser:
    """Splits a byte stream into part bodies. ``read`` is any callable returning b'' at the end."""

    def __init__(self, read: Callable[[int], bytes], boundary: bytes) -> None:
        self._read = read
        self._delimiter = b"--" + boundary
        self._buf = bytearray()
        self._scan = 0  # where searching for the delimiter resumes

    def _fill(self) -> None:
        chunk = self._read(CHUNK)
        if not chunk:
            raise EOFError("the stream ended")
        self._buf += chunk

    def next_part(self) -> tuple[bytes, float]:
        """The next part's body and the ``time.monotonic()`` at which its delimiter was seen."""
        while (start := self._buf.find(self._delimiter, self._scan)) < 0:
            self._scan = max(0, len(self._buf) - len(self._delimiter))
            if len(self._buf) > MAX_PART:
                raise SourceError(f"no multipart boundary {self._delimiter.decode(errors='replace')!r} in the stream")
            self._fill()
        seen = time.monotonic()
        del self._buf[:start]
        self._scan = 0
        while (end := self._headers_end()) is None:
            if len(self._buf) > MAX_HEADER:
                raise SourceError("a multipart part header is too long")
            self._fill()
        head_end, body_start = end
        headers = bytes(self._buf[len(self._delimiter) : head_end]).decode("latin-1")
        del self._buf[:body_start]
        length = re.search(r"(?im)^content-length\s*:\s*(\d+)\s*$", headers)
        if length:
            size = int(length.group(1))
            if size > MAX_PART:
                raise SourceError(f"a part of {size} bytes is too large for a camera frame")
            while len(self._buf) < size:
                self._fill()
            body = bytes(self._buf[:size])
            del self._buf[:size]
            return body, seen
        while (stop := self._buf.find(self._delimiter, self._scan)) < 0:
            self._scan = max(0, len(self._buf) - len(self._delimiter))
            if len(self._buf) > MAX_PART:
                raise SourceError("a part without Content-Length never ended")
            self._fill()
        body = bytes(self._buf[:stop]).rstrip(b"\r\n")
        del self._buf[:stop]
        self._scan = 0
        return body, seen

    def _headers_end(self) -> tuple[int, int] | None:
        """Where the part's headers end and its body starts: the first blank line, CRLF or LF."""
        found = [(pos, pos + len(sep)) for sep in (b"\r\n\r\n", b"\n\n")
                 if (pos := self._buf.find(sep, len(self._delimiter))) >= 0]  # fmt: skip
        return min(found) if found else None


class MjpegStream:
    """The reader thread of one open stream; the newest part is kept, the rest dropped undecoded."""

    def __init__(self, config: UrlSourceConfig, opened: Opened, boundary: bytes) -> None:
        self.config = config
        self.opened = opened
        self.parser = MultipartParser(opened.response.read1, boundary)
        self._cond = threading.Condition()
        self._latest: tuple[bytes, float, float, int] | None = None  # body, seen (monotonic), wall, sequence
        self._error: SourceError | None = None
        self._stopping = False
        self._last_seen = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="mjpeg-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sequence = 0
        try:
            while not self._stopping:
                body, seen = self.parser.next_part()
                sequence += 1
                with self._cond:
                    self._latest = (body, seen, time.time() - (time.monotonic() - seen), sequence)
                    self._last_seen = seen
                    self._cond.notify_all()
        except SourceError as exc:
            self._fail(exc)
        except EOFError:
            self._fail(SourceError("the server ended the stream"))
        except Exception as exc:  # network errors of every kind end this connection, not the process
            self._fail(SourceError(f"stream broken: {why(exc, self.config.timeout)}"))

    def _fail(self, error: SourceError) -> None:
        with self._cond:
            if not self._stopping:
                self._error = error
            self._cond.notify_all()

    def check(self) -> None:
        with self._cond:
            if self._error is not None:
                raise self._error
            silent = time.monotonic() - self._last_seen
        if silent > self.config.stall_timeout:
            raise SourceError(f"stream stalled: no frame for {silent:.0f} s")

    def wait_for(self, after: float) -> tuple[bytes, float, int]:
        """(JPEG bytes, wall time, sequence) of the first frame whose delimiter came after ``after``."""
        deadline = time.monotonic() + self.config.stall_timeout
        with self._cond:
            while True:
                if self._latest is not None and self._latest[1] >= after:
                    body, _, wall, sequence = self._latest
                    return body, wall, sequence
                if self._error is not None:
                    raise self._error
                if self._stopping:
                    raise SourceError("the stream was closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SourceError(f"stream stalled: no new frame within {self.config.stall_timeout:g} s")
                self._cond.wait(remaining)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.opened.close()
        self._thread.join(timeout=2)
