"""HTTP for the URL sources, with http.client: timeouts, basic auth, redirects, plain-words errors.

Plain http.client rather than OpenCV's FFmpeg reader: we control timeouts (FFmpeg's
default is 30 s, during which the camera thread would hang), we get the HTTP status
(a 401 says "wrong password" instead of "cannot open"), and we see each frame as it
arrives, which is what freshness needs.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from printmesh_camera.config import UrlSourceConfig
from printmesh_camera.sources.base import SourceError
from printmesh_core import __version__

USER_AGENT = f"printmesh-camera/{__version__}"
MAX_REDIRECTS = 3


@dataclass
class Opened:
    connection: http.client.HTTPConnection
    response: http.client.HTTPResponse
    url: str  # after redirects
    sock: socket.socket | None  # kept here: http.client drops conn.sock once the response owns it

    @property
    def content_type(self) -> str:
        return (self.response.getheader("Content-Type") or "").strip()

    def close(self) -> None:
        """Unblock a reader on another thread, then release the socket."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # a reader blocked in recv() returns now
        self.response.close()
        self.connection.close()


def why(exc: BaseException, timeout: float) -> str:
    """A network exception in words a user can act on."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the stream server running?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected):
        return "the server closed the connection"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def _headers(config: UrlSourceConfig, url: str) -> dict[str, str]:
    """Basic auth only towards the configured host: a redirect elsewhere does not get the password."""
    headers = {"User-Agent": USER_AGENT, "Accept": "multipart/x-mixed-replace, image/jpeg;q=0.9, */*;q=0.1"}
    if config.username is not None and urlsplit(url).hostname == urlsplit(config.url).hostname:
        password = config.password.get_secret_value() if config.password else ""
        token = base64.b64encode(f"{config.username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return headers


def get(config: UrlSourceConfig, url: str | None = None) -> Opened:
    """GET the URL and return the open response (status 200), following a few redirects."""
    url = url or config.url
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname or "", parts.port, timeout=config.timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", target, headers=_headers(config, url))
            sock = conn.sock
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise SourceError(f"cannot fetch: {why(exc, config.timeout)}") from None
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
            url = urljoin(url, resp.getheader("Location") or "")
            conn.close()
            continue
        if resp.status != 200:
            conn.close()
            hint = " (wrong or missing username/password)" if resp.status in (401, 403) else ""
            raise SourceError(f"HTTP {resp.status} {resp.reason}{hint}")
        return Opened(conn, resp, url, sock)
    raise SourceError(f"more than {MAX_REDIRECTS} redirects")
