"""The last captures' images, so a repeated capture request gets its image again.

A requester that was away from the broker when an image was published (a restart, a failover)
asks again with the same request id. The camera never captures twice for one id
(``printmesh_core.repeats``): it answers with the first answer, and this sends the same JPEG
again on the same topic first. Bounded by count and bytes; an image pushed out is not sent
again, and the repeat is answered ``image_not_kept`` instead of the first answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

KEPT_IMAGES = 32
KEPT_BYTES = 16 * 1024 * 1024


class RecentImages:
    def __init__(self, count: int = KEPT_IMAGES, size: int = KEPT_BYTES) -> None:
        self.count = count
        self.size = size
        self._images: OrderedDict[str, bytes] = OrderedDict()  # topic -> JPEG
        self._bytes = 0
        self._lock = threading.Lock()

    def keep(self, topic: str, jpeg: bytes) -> None:
        with self._lock:
            old = self._images.pop(topic, None)
            self._bytes -= len(old) if old is not None else 0
            if len(jpeg) > self.size:
                return
            self._images[topic] = jpeg
            self._bytes += len(jpeg)
            while len(self._images) > self.count or self._bytes > self.size:
                _, dropped = self._images.popitem(last=False)
                self._bytes -= len(dropped)

    def get(self, topic: str) -> bytes | None:
        with self._lock:
            return self._images.get(topic)

    @property
    def kept(self) -> tuple[int, int]:
        """(images, bytes) kept."""
        with self._lock:
            return len(self._images), self._bytes
