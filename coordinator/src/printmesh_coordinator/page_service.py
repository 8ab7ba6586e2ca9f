"""The job pages' side of their helper process (``child.py``): ``page.build`` of one folder per request.

The coordinator's page worker sends ``(folder, final)`` and gets the ``Built`` back. Stopping
a long encode at shutdown is the one thing that cannot wait for the reply: the coordinator
sends ``SIGUSR1``, which sets the build's ``stop`` event, and the encode ends between frames
leaving the page saying how to finish it (``--render``), as it did on a thread.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

from printmesh_coordinator.page_html import Built


class Handler:
    def __init__(self) -> None:
        from printmesh_coordinator import page  # OpenCV: here, not in the coordinator

        self.page = page
        self.stop = threading.Event()
        signal.signal(signal.SIGUSR1, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def handle(self, request: tuple[str, bool]) -> Built:
        folder, final = request  # ``stop`` is never cleared: it is the coordinator's shutdown
        return self.page.build(Path(folder), final=final, stop=self.stop)
