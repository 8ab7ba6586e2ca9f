"""An HTTP camera: an MJPEG stream or a JPEG snapshot URL, told apart by the server's answer.

``mode: auto`` opens the URL once and looks at the Content-Type: ``multipart/...`` is a
stream (kept open by a reader thread, see :mod:`.mjpeg`), ``image/...`` is a snapshot
URL (fetched anew for every frame, so the frame is always produced after the request).
mjpg-streamer and OctoPrint serve ``/?action=stream`` and ``/?action=snapshot``;
ustreamer and camera-streamer serve ``/stream`` and ``/snapshot``.
"""

from __future__ import annotations

import logging
import time

from printmesh_camera.config import UrlSourceConfig
from printmesh_camera.imaging import decode_jpeg
from printmesh_camera.sources import http
from printmesh_camera.sources.base import Frame, Source, SourceError
from printmesh_camera.sources.mjpeg import MjpegStream, boundary_of

log = logging.getLogger("printmesh.camera")


class UrlSource(Source):
    def __init__(self, config: UrlSourceConfig) -> None:
        self.config = config
        self.description = f"url {config.url}"
        self.mode = config.mode
        self._stream: MjpegStream | None = None
        self._open = False

    def open(self) -> None:
        opened = http.get(self.config)
        content_type = opened.content_type
        boundary = boundary_of(content_type)
        if self.config.mode in ("auto", "mjpeg") and boundary is not None:
            self.mode = "mjpeg"
            self._stream = MjpegStream(self.config, opened, boundary)
        elif self.config.mode in ("auto", "snapshot") and content_type.lower().startswith("image/"):
            opened.close()  # an image from before any request: only proves the URL works
            self.mode = "snapshot"
        else:
            opened.close()
            want = {"auto": "an MJPEG stream or a JPEG image", "mjpeg": "an MJPEG stream (multipart/x-mixed-replace)",
                    "snapshot": "a JPEG image"}[self.config.mode]  # fmt: skip
            raise SourceError(f"the server answered with {content_type or 'no Content-Type'!r}, not {want}")
        self.description = f"url {self.config.url} ({self.mode})"
        self._open = True
        log.info("%s opened", self.description)

    def check(self) -> None:
        if self._stream is not None:
            self._stream.check()

    def read(self, after: float, label: str | None = None) -> Frame:
        if not self._open:
            raise SourceError("not open")
        if self._stream is not None:
            body, wall, sequence = self._stream.wait_for(after)
            return Frame(decode_jpeg(body, f"stream frame {sequence}"), wall, sequence)
        opened = http.get(self.config)
        try:
            body = opened.response.read()
        except (OSError, ValueError) as exc:
            raise SourceError(f"snapshot download failed: {http.why(exc, self.config.timeout)}") from None
        finally:
            opened.close()
        wall = time.time()
        return Frame(decode_jpeg(body, "the snapshot"), wall)

    def interrupt(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.close()

    def close(self) -> None:
        self._open = False
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
