"""Print watch, the thread: each captured layer is judged here, never on the loop that decides holds.

The loop only queues a layer once its hold is released and its metadata written (a bounded
backlog: when the detector falls behind, the oldest waiting layer is dropped and counted,
the loop never waits). The worker reads the layer's JPEGs from the job folder, asks the
printer's ``Watcher`` (one per job: it keeps the earlier layers to compare with) for a
verdict, and hands the result back to the loop as a ``Judged`` input. The judging itself
runs in a helper process (``watch_process``, ``process=True``, the default): on a thread its
numpy took the GIL in turns with the loop. The process is started, and imports the
detector and OpenCV, as the worker starts, so the import never lands in the middle of a hold.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from printmesh_coordinator.config import WatchConfig
from printmesh_coordinator.watch_process import ProcessDetector
from printmesh_coordinator.watch_rules import Growth, judgeable, published
from printmesh_coordinator.watch_scene import Outline, Scene, camera_model, outlines_of
from printmesh_core.models.coordinator import LayerCapture
from printmesh_core.models.layers import LayerOutlines
from printmesh_core.models.watch import WatchVerdict

log = logging.getLogger("printmesh.coordinator.watch")

BACKLOG = 4  # layers waiting at most; a layer takes ~0.15 s, holds come seconds apart
WATCHERS_KEPT = 8  # jobs whose history the detector keeps, at least: the shell asks for two per watched printer
NICE = 5
DETECTOR = "printmesh_coordinator.watch.detector"  # the module with ``Watcher`` (and ``GrowthHint``)


class Detector(Protocol):
    def judge(self, layer: int, images: Any, growth: Any, names: Any) -> Any: ...


@dataclass(frozen=True)
class Layer:
    """One captured layer to judge."""

    printer: str
    config: WatchConfig
    metadata: LayerCapture
    growth: Growth
    outlines: LayerOutlines | None = None  # the printed file's, from the bridge


@dataclass(frozen=True)
class Judged:
    """The worker's answer, queued for the loop: publish it, write it beside the metadata, act on it."""

    printer: str
    verdict: WatchVerdict


History = Callable[[str, str], list[LayerCapture]]  # printer, job -> the job's layer metadata in the store


class WatchWorker:
    def __init__(
        self, read: Callable[[str], bytes], done: Callable[[Judged], None], backlog: int = BACKLOG,
        detector: str = DETECTOR, history: History | None = None, kept: int = WATCHERS_KEPT, process: bool = True,
    ) -> None:  # fmt: skip
        self._detector = detector
        self._process: ProcessDetector | None = ProcessDetector(detector) if process else None
        self._read = read  # a path relative to the store (local folder or bucket prefix) -> its bytes
        self._history = history
        self._kept = max(1, kept)  # jobs remembered; fewer than the printers printing at once and every layer
        # would start from the store's copy of the last one (``_resume``) instead of from memory
        self.resumed = 0  # jobs picked up from the store's earlier layers instead of from nothing
        self._done = done
        self._queue: deque[Layer] = deque()
        self._backlog = backlog
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self.dropped = 0
        self.failed = 0
        self.judged = 0
        self._watchers: OrderedDict[tuple[str, str], Detector] = OrderedDict()
        self._thread = threading.Thread(target=self._run, name="print-watch", daemon=True)
        self._thread.start()

    def submit(self, layer: Layer) -> None:
        """Any thread, never blocks: queue a layer; a full backlog drops its oldest layer."""
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self._backlog:
                old = self._queue.popleft()
                self.dropped += 1
                log.warning("%s: print watch behind: layer %d of %s not judged", old.printer, old.metadata.layer,
                            old.metadata.job)  # fmt: skip
            self._queue.append(layer)
            self._cond.notify()

    def idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being judged (tests and benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, grace: float) -> None:
        with self._cond:
            self._closing = True
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(grace)
        if self._process is not None:
            self._process.close(grace)

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: nice applies to this thread only
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        try:
            detector: Any = self._process or importlib.import_module(self._detector)
            if self._process is not None:
                self._process.start()
        except Exception as exc:  # ImportError, ChildFailed, no process to be had: the coordinator goes on without
            log.error("print watch off: the detector cannot be started: %s", exc)
            with self._cond:
                self._closing = True
                self._queue.clear()
                self._cond.notify_all()
            return
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if self._closing:
                    return
                layer = self._queue.popleft()
                self._busy = True
            try:
                verdict = self._judge(detector, layer)
                if verdict is not None:
                    self.judged += 1
                    self._done(Judged(layer.printer, verdict))
            except Exception as exc:  # a bad image or a detector bug must not end the worker
                self.failed += 1
                log.error("%s: layer %d not judged: %s", layer.printer, layer.metadata.layer, exc, exc_info=True)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _watcher(self, detector: Any, layer: Layer) -> tuple[Detector, Layer]:
        key = (layer.printer, layer.metadata.job)
        watcher = self._watchers.get(key)
        if watcher is None or getattr(watcher, "lost", False):  # lost: its process had to be started again
            watcher = detector.Watcher()
            self._watchers[key] = watcher
            while len(self._watchers) > self._kept:
                _, old = self._watchers.popitem(last=False)
                forget = getattr(old, "close", None)  # a process watcher's history is dropped there too
                if forget is not None:
                    forget()
            layer = self._resume(detector, watcher, layer)
        self._watchers.move_to_end(key)
        return watcher, layer

    def _resume(self, detector: Any, watcher: Detector, layer: Layer) -> Layer:
        """A job this worker has no memory of, past its first captured layer: the coordinator restarted,
        took the printer over from a dead one, or dropped the job's watcher for newer jobs. Without
        this, the layer would be compared with nothing (``ok``) and a fault there missed; so the
        detector first learns the job's last earlier layer from the store (its verdict unused), and
        the growth hint gets that layer's z. Best effort: a store that cannot be listed changes nothing."""
        md = layer.metadata
        if self._history is None:
            return layer
        try:
            earlier = [e for e in self._history(layer.printer, md.job) if e.layer < md.layer and judgeable(e)]
        except Exception as exc:  # the store's own errors say why; judging this layer goes on regardless
            log.warning("%s: print watch cannot read the earlier layers of %s: %s", layer.printer, md.job, exc)
            return layer
        if not earlier:
            return layer  # the job's first captured layer
        last = max(earlier, key=lambda e: e.layer)
        images, names, _ = self._images(last)
        if not images:
            return layer
        watcher.judge(last.layer, images, detector.GrowthHint(z=last.z_height), names=names)
        self.resumed += 1
        log.info("%s: print watch resumed job %s from its layer %d", layer.printer, md.job, last.layer)
        if layer.growth.previous_layer is not None:
            return layer
        growth = Growth(md.layer, md.z_height, last.layer, last.z_height)
        return Layer(layer.printer, layer.config, md, growth, layer.outlines)

    def _images(self, md: LayerCapture) -> tuple[dict[tuple[str, int], bytes], dict[tuple[str, int], str], list[str]]:
        images: dict[tuple[str, int], bytes] = {}
        names: dict[tuple[str, int], str] = {}
        unread: list[str] = []
        for image in md.images:
            try:
                images[(image.camera, image.index)] = self._read(image.path)
                names[(image.camera, image.index)] = Path(image.path).name
            except OSError as exc:
                unread.append(f"{Path(image.path).name}: {exc.strerror or exc}")
        return images, names, unread

    def _judge(self, detector: Any, layer: Layer) -> WatchVerdict | None:
        md = layer.metadata
        images, names, unread = self._images(md)
        if not images:
            log.error("%s: layer %d not judged: no image readable (%s)", layer.printer, md.layer, "; ".join(unread))
            return None
        started = time.perf_counter()
        watcher, layer = self._watcher(detector, layer)
        verdict = watcher.judge(md.layer, images, growth_hint(detector, layer), names=names)
        note = f"images not read: {'; '.join(unread)}" if unread else None
        out = published(layer.config, md, verdict, names, note)
        if not out.elapsed_ms:
            out = out.model_copy(update={"elapsed_ms": round((time.perf_counter() - started) * 1000, 3)})
        return out


def growth_hint(detector: Any, layer: Layer) -> Any:
    """The detector's ``GrowthHint`` from what the coordinator knows: the part's top now and at the
    previous captured layer (the head-mounted camera rises with it), and the scene the G-code's
    silhouette needs when the bridge sent the file's outlines and the cameras their geometry."""
    return detector.GrowthHint(z=layer.growth.z, previous_z=layer.growth.previous_z, scene=scene_of(layer))


_OUTLINES: dict[int, tuple[LayerOutlines, tuple[Outline, ...]]] = {}  # id -> converted, the worker's thread only


def scene_of(layer: Layer) -> Scene | None:
    """Outlines of the layers printed before this hold (its own layer is not), each image's head position and camera."""
    md, outlines = layer.metadata, layer.outlines
    cameras = {i.camera: camera_model(i.geometry) for i in md.images if i.geometry is not None}
    if outlines is None or not cameras:
        return None
    kept = _OUTLINES.get(id(outlines))
    if kept is None or kept[0] is not outlines:
        _OUTLINES.clear()  # one file per printer: a few entries at most
        kept = _OUTLINES[id(outlines)] = (outlines, outlines_of(outlines.outlines))
    printed = [o for o, m in zip(kept[1], sorted(outlines.outlines, key=lambda x: x.layer), strict=True)
               if m.layer < md.layer]  # fmt: skip
    heads = {(i.camera, i.index): (i.position.x, i.position.y, i.z) for i in md.images if i.camera in cameras}
    return Scene(tuple(printed), heads, cameras)
