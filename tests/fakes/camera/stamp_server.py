"""An HTTP camera for tests: an MJPEG stream and a JPEG snapshot, served on 127.0.0.1.

Every frame carries the printmesh framecode stamp (counter, time, label "stream" or
"snapshot"), so a test can tell which frame it got and when it was made. ``sent`` is the
counter of the newest frame whose sending has started: a frame with a larger counter was
produced after that moment, which is how tests prove a capture is fresh.

``stop()`` closes the listener and every open stream (the camera dies mid-stream);
``start()`` brings it back on the same port. ``content_length=False`` omits the part
header, as some servers do. Basic auth is checked when ``auth=(user, password)``.

Run standalone (for the docs' transcripts): ``python tests/fakes/camera/stamp_server.py --port 8080``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from printmesh_camera.framecode import Stamp, draw

BOUNDARY = "printmeshtestboundary"


class StampServer:
    def __init__(
        self,
        fps: float = 20.0,
        size: tuple[int, int] = (640, 480),
        auth: tuple[str, str] | None = None,
        content_length: bool = True,
        port: int = 0,
    ) -> None:
        self.fps, self.size, self.auth, self.content_length = fps, size, auth, content_length
        self.port = port
        self.sent = -1
        self.requests: list[str] = []
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._streams: set[socket.socket] = set()

    # ---------------------------------------------------------------- frames
    def frame(self, label: str) -> tuple[int, bytes]:
        with self._lock:
            counter = next(self._counter)
        width, height = self.size
        image = np.full((height, width, 3), (60, 120, 30), np.uint8)
        cv2.putText(image, f"{label} {counter}", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        draw(image, Stamp(counter, time.time(), label))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        return counter, buf.tobytes()

    def url(self, path: str = "/stream", credentials: str = "") -> str:
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}{path}"

    # ------------------------------------------------------------- lifecycle
    def start(self) -> StampServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                if owner.auth and not self._authorized():
                    self.send_response(401, "Unauthorized")
                    self.send_header("WWW-Authenticate", 'Basic realm="cam"')
                    self.end_headers()
                    return
                if self.path.startswith("/stream"):
                    owner._stream(self)
                elif self.path.startswith("/snapshot"):
                    counter, jpeg = owner.frame("snapshot")
                    owner.sent = max(owner.sent, counter)
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(jpeg)))
                    self.end_headers()
                    self.wfile.write(jpeg)
                elif self.path.startswith("/redirect"):
                    self.send_response(302)
                    self.send_header("Location", "/snapshot")
                    self.end_headers()
                else:
                    body = b"<html>not a camera</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def _authorized(self) -> bool:
                assert owner.auth is not None
                want = base64.b64encode(f"{owner.auth[0]}:{owner.auth[1]}".encode()).decode()
                return self.headers.get("Authorization", "") == f"Basic {want}"

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        sock = handler.connection
        with self._lock:
            self._streams.add(sock)
        try:
            while self._server is not None:
                counter, jpeg = self.frame("stream")
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                if self.content_length:
                    head += f"Content-Length: {len(jpeg)}\r\n"
                self.sent = max(self.sent, counter)
                handler.wfile.write(head.encode() + b"\r\n" + jpeg + b"\r\n")
                handler.wfile.flush()
                time.sleep(1 / self.fps)
        except OSError:
            pass
        finally:
            with self._lock:
                self._streams.discard(sock)

    def stop(self) -> None:
        """The camera dies: no more connections, and the open streams are cut."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            streams = list(self._streams)
        for sock in streams:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> StampServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="MJPEG (/stream) and snapshot (/snapshot) test camera")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--fps", type=float, default=10.0)
    args = parser.parse_args()
    srv = StampServer(fps=args.fps, port=args.port).start()
    print(f"serving {srv.url('/stream')} and {srv.url('/snapshot')}", flush=True)
    threading.Event().wait()
