"""Print watch, the loop's side: queue each captured layer, then publish, record and act on its verdict.

Runs on the coordinator's loop thread, between holds: a layer is handed to the worker once
its hold was released and its metadata written (``layer_done``), so judging it can never
delay a hold. Its verdict comes back as a ``Judged`` input: written beside the metadata as
the layer's watch sidecar (the metadata is on disk already and is never rewritten),
published retained on ``<coord>/coordinator/<printer>/watch``, and, for a problem with
``on_problem: pause``, followed by the bridge's ``pause`` command. The hold's release has
already brought the head back, so the pause stops a printer whose head is over its print. A
pause refused because a later hold is running (``held``) is sent again after that hold's
release. A job is paused once: after its resume, a layer that still shows the problem is
published with ``action: notify``.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable

from printmesh_coordinator.config import PrinterConfig
from printmesh_coordinator.job_folder import OUTLINES_NAME
from printmesh_coordinator.link import Link
from printmesh_coordinator.messages import Answer
from printmesh_coordinator.storage import Storage
from printmesh_coordinator.watch_rules import Growth, judgeable, once_per_job, sidecar_path
from printmesh_coordinator.watch_worker import WATCHERS_KEPT, Judged, Layer, WatchWorker
from printmesh_core import contract
from printmesh_core.models.base import Payload
from printmesh_core.models.coordinator import LayerCapture
from printmesh_core.models.layers import LayerOutlines
from printmesh_core.models.printer import PauseRequest
from printmesh_core.models.watch import WatchVerdict
from printmesh_core.topics import ComponentTopics

log = logging.getLogger("printmesh.coordinator.watch")

Publish = Callable[[str, Payload], None]
Page = Callable[[str, str], None]  # printer, job: rebuild its page
Queue = Callable[[str, Judged], None]  # printer, verdict: into the loop's inbox
LAST_KEPT = 64  # (printer, job) -> last captured (layer, z), for the growth hint


class WatchShell:
    def __init__(self, printers: list[PrinterConfig], storage: Storage, link: Link, me: ComponentTopics,
                 publish: Publish, page: Page, queue: Queue, session: str, process: bool = True) -> None:  # fmt: skip
        self.configs = {p.node: p.watch for p in printers}
        self.storage, self.link, self.me, self.publish, self.page = storage, link, me, publish, page
        self.session = session
        self.seq = 0
        self.last: dict[tuple[str, str], tuple[int, float | None]] = {}
        self.outlined: dict[tuple[str, str], None] = {}  # jobs whose outlines were stored (bounded like ``last``)
        self.pauses: dict[str, tuple[str, WatchVerdict]] = {}  # request id -> printer, the verdict it acts on
        self.retry: dict[str, WatchVerdict] = {}  # printer -> a pause refused during a hold, sent after its release
        self.paused: dict[tuple[str, str], int] = {}  # (printer, job) -> the layer whose verdict paused it
        watched = sum(c.enabled for c in self.configs.values())
        wanted = watched > 0
        # the worker reads the layer's images back from the store, on its own thread
        # and, for a job it has no memory of (after a restart), the job's earlier layers
        self.worker = (
            WatchWorker(storage.read, lambda j: queue(j.printer, j), history=storage.store.layers,
                        kept=max(WATCHERS_KEPT, 2 * watched),  # each printer's job, and the one before it
                        process=process)  # judged in a helper process (watch_process), not on this one's GIL
            if wanted else None
        )  # fmt: skip

    def topic(self, printer: str) -> str:
        return contract.COORDINATOR_WATCH.topic(self.me, printer)

    # ------------------------------------------------------------------ after each hold
    def layer_done(self, printer: str, md: LayerCapture) -> None:
        """A hold's metadata was published (after its release): judge it, and send a postponed pause."""
        retry = self.retry.pop(printer, None)
        if retry is not None:
            self._pause(printer, retry)
        config = self.configs.get(printer)
        if self.worker is None or config is None or not config.enabled or not judgeable(md):
            return
        key = (printer, md.job)
        previous = self.last.get(key)
        self.last[key] = (md.layer, md.z_height)
        while len(self.last) > LAST_KEPT:
            self.last.pop(next(iter(self.last)))
        prev_layer, prev_z = previous if previous is not None and previous[0] < md.layer else (None, None)
        outlines = self.link.outlines.get(printer)
        if outlines is not None and outlines.path != md.gcode_file:
            outlines = None  # another file's (the retained message of the one printed before)
        if outlines is not None and md.metadata_path and key not in self.outlined:
            self._keep_outlines(key, md.metadata_path, outlines)
        self.worker.submit(Layer(printer, config, md, Growth(md.layer, md.z_height, prev_layer, prev_z), outlines))

    def _keep_outlines(self, key: tuple[str, str], metadata_path: str, outlines: LayerOutlines) -> None:
        """The job's outlines beside its captures, once: the folder then holds all ``--calibrate`` needs,
        after the bridge has moved on to another file."""
        self.outlined[key] = None
        while len(self.outlined) > LAST_KEPT:
            self.outlined.pop(next(iter(self.outlined)))
        path = f"{posixpath.dirname(metadata_path)}/{OUTLINES_NAME}"
        self.storage.write_aside(path, outlines.model_dump_json().encode(), f"{key[0]}: the job's outlines")

    # ------------------------------------------------------------------ the loop's inputs
    def consume(self, message: object) -> bool:
        """True when ``message`` was the watch's own (a verdict, or the answer to our pause)."""
        try:
            if isinstance(message, Judged):
                self._verdict(message.printer, message.verdict)
                return True
            if isinstance(message, Answer) and message.request_id in self.pauses:
                self._paused(message)
                return True
        except Exception as exc:  # the loop's guard: a verdict that cannot be handled is logged and dropped
            log.error("print watch: %s not handled: %s", type(message).__name__, exc, exc_info=True)
            return True
        return False

    def _verdict(self, printer: str, verdict: WatchVerdict) -> None:
        verdict = once_per_job(verdict, (printer, verdict.job) in self.paused)
        if verdict.metadata_path is not None:
            body = (verdict.model_dump_json(indent=2) + "\n").encode()
            self.storage.write_aside(
                sidecar_path(verdict.metadata_path), body, f"{printer}: watch verdict of layer {verdict.layer}"
            )
        self.publish(self.topic(printer), verdict)
        level = logging.WARNING if verdict.problem else logging.INFO
        log.log(level, "%s: layer %d watched: %s (confidence %.2f, score %.3f, %.0f ms)%s", printer, verdict.layer,
                verdict.verdict, verdict.confidence, verdict.score, verdict.elapsed_ms,
                f": {verdict.action}" if verdict.problem else "")  # fmt: skip
        self.storage.later(lambda: self.page(printer, verdict.job))  # after the sidecar is stored
        if verdict.action == "pause":
            self._pause(printer, verdict)

    def _pause(self, printer: str, verdict: WatchVerdict) -> None:
        self.paused[(printer, verdict.job)] = verdict.layer
        while len(self.paused) > LAST_KEPT:
            self.paused.pop(next(iter(self.paused)))
        self.seq += 1
        rid = f"{self.session}-w.{self.seq}"
        self.pauses[rid] = (printer, verdict)
        while len(self.pauses) > LAST_KEPT:  # unanswered pauses (the bridge went away) are forgotten
            self.pauses.pop(next(iter(self.pauses)))
        log.warning("%s: pausing the print: layer %d looks like %s (confidence %.2f)", printer, verdict.layer,
                    verdict.verdict, verdict.confidence)  # fmt: skip
        self.link.requests.send(self.link.printer(printer), contract.PAUSE.name, PauseRequest(id=rid), printer)

    def _paused(self, answer: Answer) -> None:
        printer, verdict = self.pauses.pop(answer.request_id)
        if answer.ok:
            log.warning("%s: print paused by the print watch (layer %d: %s)", printer, verdict.layer, verdict.verdict)
        elif answer.code == contract.HELD:  # the refusal during a hold (job_commands): after its release
            self.retry[printer] = verdict
        else:
            log.error("%s: pause refused: %s: %s", printer, answer.code, answer.message)

    def close(self, grace: float) -> None:
        if self.worker is not None:
            self.worker.close(grace)
