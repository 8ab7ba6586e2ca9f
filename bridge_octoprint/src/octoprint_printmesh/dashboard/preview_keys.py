"""Short-lived signed keys that let a page fetch camera previews without OctoPrint's Flask.

Why: a request through OctoPrint's Flask app (the WSGI container, its session and login
handlers) costs the OctoPrint process several milliseconds of CPU. At one preview per second
that alone was about 2 % of a core with the Dashboard tab open (``bench/dashboard.py``), the
whole of the tab's cost. The previews are therefore served by a plain Tornado handler that
checks one of these keys instead of the session: a keyed hash, microseconds.

A key is handed out only by the authenticated ``watch`` call, only to a user with OctoPrint's
WEBCAM permission (exactly who may see the previews through the Flask route), and it expires
after ``ttl`` seconds. A page renews it with every ``watch`` (every 10 s), so logging out or
losing the permission ends access within ``ttl``. The secret lives in memory only: a restart
invalidates every key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

TTL = 120.0  # seconds a key is good for; pages renew it every 10 s


class PreviewKeys:
    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.time, secret: bytes | None = None) -> None:
        self._ttl = ttl
        self._clock = clock
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def _sign(self, expires: str) -> str:
        return hmac.new(self._secret, b"preview:" + expires.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> str:
        expires = str(int(self._clock() + self._ttl))
        return f"{expires}.{self._sign(expires)}"

    def valid(self, key: str) -> bool:
        expires, _, signature = key.partition(".")
        if not expires.isdigit() or len(expires) > 12 or len(signature) != 32:
            return False
        if not hmac.compare_digest(signature, self._sign(expires)):
            return False
        left = int(expires) - self._clock()
        return 0 <= left <= self._ttl + 1  # expired, or from a clock far ahead: refused
