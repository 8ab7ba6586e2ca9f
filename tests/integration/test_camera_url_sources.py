"""The URL and MJPEG sources against a real local HTTP server (tests/fakes/camera/stamp_server.py)."""

from __future__ import annotations

import time

import pytest
from fakes.camera.stamp_server import StampServer

from printmesh_camera.config import (
    UrlSourceConfig,
)
from printmesh_camera.framecode import decode
from printmesh_camera.sources import SourceError
from printmesh_camera.sources.url import UrlSource


@pytest.mark.parametrize("content_length", [True, False])
def test_mjpeg_source_returns_a_frame_sent_after_the_request(content_length):
    with StampServer(fps=25, content_length=content_length) as server:
        src = UrlSource(UrlSourceConfig(type="url", url=server.url("/stream")))
        src.open()
        assert src.mode == "mjpeg" and "(mjpeg)" in src.description
        time.sleep(0.5)  # frames keep coming meanwhile
        sent_before = server.sent  # the frame being written at this moment (the server counts before writing)
        frame = src.read(time.monotonic())
        stamp = decode(frame.image)
        # Fresh means: not older than the frame already on the wire when the request came. A frame
        # that was in flight then may be the one returned when the reader thread lags (seen under
        # heavy CPU load); every frame older than that must have been dropped.
        assert stamp and stamp.counter >= sent_before and stamp.label == "stream"
        src.close()


def test_url_source_snapshot_auth_redirect_and_errors():
    with StampServer(auth=("pi", "pw")) as server:
        good = UrlSourceConfig(type="url", url=server.url("/redirect"), username="pi", password="pw")
        src = UrlSource(good)
        src.open()
        assert src.mode == "snapshot"
        before = server.sent
        stamp = decode(src.read(time.monotonic()).image)
        assert stamp and stamp.label == "snapshot" and stamp.counter > before
        with pytest.raises(SourceError, match=r"HTTP 401.*username/password"):
            UrlSource(UrlSourceConfig(type="url", url=server.url("/snapshot"), username="pi", password="no")).open()
        with pytest.raises(SourceError, match="text/html"):
            UrlSource(good.model_copy(update={"url": server.url("/index.html")})).open()
        with pytest.raises(SourceError, match="not an MJPEG stream"):
            UrlSource(good.model_copy(update={"url": server.url("/snapshot"), "mode": "mjpeg"})).open()
        port = server.port
    with pytest.raises(SourceError, match="connection refused"):
        UrlSource(UrlSourceConfig(type="url", url=f"http://127.0.0.1:{port}/stream", timeout=1)).open()
