"""The print watch's detector in a helper process, behind the detector module's own interface.

``WatchWorker`` asks a detector module for ``Watcher()`` and ``GrowthHint``; ``ProcessDetector``
offers the same two, so the worker's rules (one watcher per job, the newest jobs kept, a job
resumed from the store) stay where they are, and only the judging (JPEG decoding, numpy,
OpenCV) moves out of the coordinator's interpreter (``child.py`` says why). Each watcher's
history lives in the process; when the process had to be started again, ``lost`` tells the
worker to begin the job anew, from the store's copy of its last layer.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from printmesh_coordinator.child import Child
from printmesh_coordinator.watch_scene import Scene

NICE = 10  # the loop (nice 0) gets ~10x its CPU share when both want the same core
SERVICE = "printmesh_coordinator.watch.service"
TIMEOUT = 60.0  # s for one layer (~0.05 s is usual): a hung process is replaced


@dataclass(frozen=True)
class GrowthHint:
    """The detector's ``GrowthHint`` fields, sent to the process (which builds its own)."""

    z: float | None = None
    previous_z: float | None = None
    boxes: Mapping[tuple[str, int], tuple[int, int, int, int]] = field(default_factory=dict)
    scene: Scene | None = None


class ProcessDetector:
    GrowthHint = GrowthHint

    def __init__(self, module: str) -> None:
        self.child = Child(SERVICE, (module,), name="print watch", nice=NICE, timeout=TIMEOUT)
        self._ids = itertools.count(1)
        self._dropped: list[int] = []  # watchers forgotten since the last request

    def start(self) -> None:
        """Start the process and wait until it has imported the detector (raises ``ChildFailed``)."""
        self.child.call(("ping", []))

    def Watcher(self) -> RemoteWatcher:
        return RemoteWatcher(self, next(self._ids))

    def judge(self, wid: int, layer: int, images: Mapping[Any, bytes], hint: Any, names: Any) -> tuple[Any, int]:
        dropped, self._dropped = self._dropped, []
        boxes = dict(getattr(hint, "boxes", {}) or {})
        scene = getattr(hint, "scene", None)
        request = (
            "judge",
            dropped,
            wid,
            layer,
            dict(images),
            (hint.z, hint.previous_z, boxes, scene),
            dict(names or {}),
        )
        return self.child.call(request), self.child.generation

    def forget(self, wid: int) -> None:
        self._dropped.append(wid)

    def close(self, grace: float) -> None:
        self.child.close(grace)


class RemoteWatcher:
    """One job's watcher, its history in the process."""

    def __init__(self, owner: ProcessDetector, wid: int) -> None:
        self._owner, self._wid = owner, wid
        self._generation: int | None = None  # the process that holds its history, once it has some

    @property
    def lost(self) -> bool:
        """Its history went with a process that died (the worker then starts the job again)."""
        if self._generation is None:
            return False
        return self._owner.child.pid is None or self._owner.child.generation != self._generation

    def judge(self, layer: int, images: Mapping[Any, bytes], growth: Any, names: Any = None) -> Any:
        verdict, generation = self._owner.judge(self._wid, layer, images, growth, names)
        if self._generation is None:
            self._generation = generation
        return verdict

    def close(self) -> None:
        self._owner.forget(self._wid)
