"""The print watch's side of its helper process (``child.py``): one ``Watcher`` per job, by id.

The coordinator's ``watch_process`` numbers each job's watcher and sends its layers here;
the watchers it forgets are dropped with the next request. The detector module is a
parameter so a test can run its own in the process.
"""

from __future__ import annotations

import importlib
from typing import Any


class Handler:
    def __init__(self, detector: str) -> None:
        self.detector = importlib.import_module(detector)  # numpy and OpenCV, here and not in the coordinator
        self.watchers: dict[int, Any] = {}

    def handle(self, request: tuple[Any, ...]) -> Any:
        kind, dropped = request[0], request[1]
        for wid in dropped:
            self.watchers.pop(wid, None)
        if kind == "judge":
            wid, layer, images, (z, previous_z, boxes, scene), names = request[2:]
            watcher = self.watchers.get(wid)
            if watcher is None:
                watcher = self.watchers[wid] = self.detector.Watcher()
            hint = self.detector.GrowthHint(z=z, previous_z=previous_z, boxes=boxes, scene=scene)
            return watcher.judge(layer, images, hint, names=names)
        if kind == "ping":
            return len(self.watchers)
        raise ValueError(f"unknown request {kind!r}")
