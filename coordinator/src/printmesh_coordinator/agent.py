"""The coordinator process: one pure state machine per printer, driven by a single loop thread.

Network callbacks only parse and queue (``Link``); the loop takes one input at a time,
asks the printer's machine what to do, and does it: requests go out, files are written
(their outcome fed straight back in), state is published. Timers are the machines' own
deadlines: the loop waits on its queue until the earliest one and then feeds a ``Tick``.
So no decision ever sleeps, and many printers share one thread without blocking each other
for longer than one decision and one file write.

Topics (relative to ``<root>/<node>/coordinator``): ``<printer>/state`` (retained
CoordinatorState), ``<printer>/capture`` (retained LayerCapture, the last layer's
metadata), ``<printer>/summary`` (retained JobSummary), ``reply`` (our MQTT 5 response
topic), ``cmd/abort``.
"""

from __future__ import annotations

import logging
import queue
import secrets
import sys
import time
from collections import deque

from printmesh_coordinator import summary as rules
from printmesh_coordinator.config import CoordinatorSettings
from printmesh_coordinator.entities import printer_entities
from printmesh_coordinator.fleet import Fleet
from printmesh_coordinator.link import Link
from printmesh_coordinator.machine import decide, next_deadline
from printmesh_coordinator.messages import (
    Abort,
    Command,
    Input,
    Note,
    PublishCapture,
    PublishState,
    SendCapture,
    SendHold,
    SendMove,
    SendRelease,
    Tick,
    WriteFailed,
    WriteImage,
    WriteMetadata,
    WriteSummary,
)
from printmesh_coordinator.report import view
from printmesh_coordinator.state import MachineState, Setup, initial
from printmesh_coordinator.state_pacer import StatePacer
from printmesh_coordinator.storage import Storage
from printmesh_coordinator.store import SUMMARY_NAME
from printmesh_coordinator.timers import Deadlines
from printmesh_coordinator.watch_shell import WatchShell
from printmesh_coordinator.watch_worker import Judged
from printmesh_core import contract
from printmesh_core.agent import Agent
from printmesh_core.commands import Command as ServedCommand
from printmesh_core.commands import CommandFailed
from printmesh_core.inbound import current_topic
from printmesh_core.models.coordinator import AbortRequest, JobSummary, LayerCapture

log = logging.getLogger("printmesh.coordinator")

IDLE_WAIT = 0.25  # s the loop waits at most, to notice a stop request
SHUTDOWN_GRACE = 15.0  # s at most to release running holds when stopping
PAGE_GRACE = 3.0  # s for the job pages queued at stop; a running video encode is then dropped
UPLOAD_GRACE = 10.0  # s for the uploads queued at stop (S3 store)
# The loop is latency-bound, its neighbours (paho's thread, the job pages, the watch) are
# throughput-bound. Each time the loop blocks (a socket send, a queue get) it gives up the GIL
# and then waits for it again for up to the interpreter's switch interval (5 ms by default),
# several times per decision. A shorter interval bounds those waits (bench/coordinator_fleet.py).
SWITCH_INTERVAL = 0.0005


class Clock:
    """Unix time that never jumps: wall time at start plus monotonic time since."""

    def __init__(self) -> None:
        self._wall = time.time()
        self._mono = time.monotonic()

    def __call__(self) -> float:
        return self._wall + (time.monotonic() - self._mono)


JOBS_KEPT = 8  # jobs whose published metadata and summary are remembered
LAYERS_KEPT = 5000  # metadata remembered per job


class CoordinatorAgent(Agent):
    component = "coordinator"

    def __init__(self, settings: CoordinatorSettings) -> None:
        super().__init__(settings)
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.section = settings.coordinator
        self.clock = Clock()
        self.inbox: queue.SimpleQueue[tuple[str | None, Input | Judged, str | None]] = queue.SimpleQueue()
        # Request ids are '<session>-<printer index>.<n>': unique across printers, processes and
        # restarts, and short enough to be the camera's capture id (the image topic's last level).
        session = secrets.token_hex(4)
        self.machines: dict[str, MachineState] = {
            p.node: initial(Setup(p, settings.node_id, f"{session}-{i}", self.section.owners))
            for i, p in enumerate(self.section.printers)
        }
        self.storage = Storage(self.section, self.deliver)
        # Each machine's next deadline, kept after every input it is fed (only then can it change):
        # the loop reads these instead of asking every machine after every input.
        self.deadlines = Deadlines()
        self.states = StatePacer(lambda p, st: self.publish_state(contract.COORDINATOR_STATE.topic(self.me, p), st))
        self.link = Link(self.runtime, self.topics, self.me, self.section, self.deliver)
        self.fleet = Fleet(
            self.runtime, self.topics, self.me, self.section, self.clock, self.deliver, self.publish_state
        )
        # Per (printer, job): the metadata we published (kept for the summary when its file
        # could not be written) and the summary we last published (one final summary per job).
        self.published: dict[tuple[str, str], list[LayerCapture]] = {}
        self.summaries: dict[tuple[str, str], JobSummary] = {}
        self.storage.on_drained = self._page_again  # a job's spooled files all uploaded: again, from the bucket
        self.watch = WatchShell(self.section.printers, self.storage, self.link, self.me, self.publish_state,
                                self._page_again,
                                lambda p, judged: self.inbox.put((p, judged, None)), session,
                                process=self.section.helpers == "process")  # fmt: skip

    def deliver(self, printer: str | None, message: Input) -> None:
        """Any thread: queue an input for one printer (None: every printer), with the topic it came on."""
        self.inbox.put((printer, message, current_topic()))

    def _page_again(self, printer: str, job: str, ended: bool = False) -> None:
        """Rebuild a job's page, final if the job has ended (its summary written here or uploaded)."""
        self.storage.page(printer, job, ended or (printer, job) in self.summaries)

    # ----------------------------------------------------------- commands
    def commands(self) -> list[ServedCommand]:
        text = "Stop the running capture sequence (one printer or all) and release the print."
        return [ServedCommand(contract.ABORT.name, contract.ABORT.request, self._abort, inline=True, description=text)]

    def _abort(self, request: AbortRequest) -> dict[str, object]:
        names = list(self.machines)
        if request.printer is not None:
            if request.printer not in self.machines:
                raise CommandFailed("unknown_printer", f"no printer {request.printer!r} here ({', '.join(names)})")
            names = [request.printer]
        for name in names:
            self.deliver(name, Abort(f"abort command {request.id}"))
        return {"printers": names}

    # ------------------------------------------------------------ running
    def attach(self) -> None:
        self.link.attach()
        self.fleet.attach(self.link)

    def loop(self) -> None:
        if not self.machines:
            log.warning("no printers configured (coordinator.printers is empty): nothing to do")
        entities = []
        for name, state in self.machines.items():
            state_topic = self.topics.absolute(contract.COORDINATOR_STATE.topic(self.me, name))
            capture_topic = self.topics.absolute(contract.COORDINATOR_CAPTURE.topic(self.me, name))
            watch_topic = self.topics.absolute(self.watch.topic(name))
            entities += printer_entities(name, state_topic, capture_topic, watch_topic)
            self.publish_state(contract.COORDINATOR_STATE.topic(self.me, name), view(state, self.clock()))
        self.announce(entities)
        self.fleet.publish()
        log.info("serving %s; captures in %s", ", ".join(self.machines) or "no printers", self.storage.where)
        while not self.stopping.is_set():
            self.step(IDLE_WAIT)
        self.shutdown()

    def step(self, max_wait: float) -> None:
        """Wait for one input (or the next deadline), handle it, then every deadline that is due."""
        due = min((t for t in (self.deadlines.earliest(), self.states.due()) if t is not None), default=None)
        wait = max_wait if due is None else max(0.0, min(max_wait, due - self.clock()))
        try:
            printer, message, topic = self.inbox.get(timeout=wait)
        except queue.Empty:
            pass
        else:
            if not self.watch.consume(message) and not isinstance(message, Judged):
                for name in [printer] if printer is not None else list(self.machines):
                    if name in self.machines:
                        self.guarded_feed(name, message, topic)
        for name in self.deadlines.pop_due(self.clock()):
            self.guarded_feed(name, Tick())
        self.states.flush(self.clock())
        self.fleet.tick()

    def guarded_feed(self, printer: str, message: Input, topic: str | None = None) -> None:
        """The loop's last-resort guard: an input that raises is counted, logged (at a bounded rate,
        with the topic it came on, the printer and the input) and dropped; the machine keeps its state."""
        try:
            self.feed(printer, message)
        except Exception as exc:
            where = f"{topic or 'no topic (a timer or a file)'} (printer {printer}: {str(message)[:200]})"
            self.runtime.health.fail(f"coordinator loop, {type(message).__name__}", where, exc)
        finally:
            self.deadlines.set(printer, next_deadline(self.machines[printer]))

    def shutdown(self) -> None:
        """Release whatever is held before going offline (the last will would, but later and blindly)."""
        for name in self.machines:
            self.guarded_feed(name, Abort("the coordinator is stopping"))
        end = time.monotonic() + SHUTDOWN_GRACE
        while any(s.run is not None for s in self.machines.values()) and time.monotonic() < end:
            self.step(0.1)
        for name, state in self.machines.items():
            if state.run is not None:
                log.warning("%s: hold %s still running at exit; the bridge releases it", name, state.run.hold_id)
        self.states.flush(self.clock(), everything=True)
        self.watch.close(PAGE_GRACE)
        self.storage.close(UPLOAD_GRACE, PAGE_GRACE)

    def feed(self, printer: str, message: Input) -> None:
        """Decide, then carry out; a file's outcome goes straight back to the same machine."""
        work: deque[Input] = deque([message])
        while work:
            state, commands = decide(self.machines[printer], work.popleft(), self.clock())
            self.machines[printer] = state
            for command in commands:
                follow = self.execute(printer, command)
                if follow is not None:
                    work.append(follow)

    # ---------------------------------------------------------- carrying out
    def execute(self, printer: str, command: Command) -> Input | None:
        if isinstance(command, SendHold | SendMove | SendCapture | SendRelease):
            self.link.send(printer, command)
        elif isinstance(command, WriteImage):
            return self.storage.write(printer, command.path, command.data)
        elif isinstance(command, WriteMetadata):
            body = (command.metadata.model_dump_json(indent=2) + "\n").encode()
            return self.storage.write(printer, command.path, body)
        elif isinstance(command, WriteSummary):
            published = list(self.published.get((printer, command.job), []))
            self.storage.later(lambda: self._summary(printer, command, published))
        elif isinstance(command, PublishState):
            self.states.offer(printer, command.state, command.progress, self.clock())
        elif isinstance(command, PublishCapture):
            self.publish_state(contract.COORDINATOR_CAPTURE.topic(self.me, printer), command.metadata)
            self._remember(printer, command.metadata)
            self._log_capture(command.metadata)
            if command.metadata.metadata_path is not None:
                self.storage.page(printer, command.metadata.job, final=False)
            self.watch.layer_done(printer, command.metadata)
        elif isinstance(command, Note):
            log.log(logging.getLevelName(command.level.upper()), "%s", command.text)
        return None

    def _summary(self, printer: str, command: WriteSummary, published: list[LayerCapture]) -> None:
        """Where the store's I/O runs (the loop for a local store, the upload thread for S3)."""
        now = self.clock()
        try:
            summary = self.storage.store.summary(printer, command.job, command.outcome, command.gcode_file,
                                                 command.print_start_time, now, published,
                                                 self.machines[printer].setup.plan,
                                                 self.link.layer_totals.get(printer))  # fmt: skip
        except OSError as exc:
            log.error("%s: cannot read the job folder of %s for its summary: %s", printer, command.job, exc)
            return
        if summary is None:
            return
        summary = rules.better(summary, self.summaries.get((printer, command.job)))
        if summary is None:
            log.debug("%s: summary of %s unchanged, not published again", printer, command.job)
            return
        self.summaries[(printer, command.job)] = summary
        while len(self.summaries) > JOBS_KEPT:
            self.summaries.pop(next(iter(self.summaries)))
        body = (summary.model_dump_json(indent=2) + "\n").encode()
        outcome = self.storage.write_here(f"{printer}/{command.job}/{SUMMARY_NAME}", body)  # behind any spooled
        if isinstance(outcome, WriteFailed):
            log.error("%s: job summary of %s not written: %s", printer, command.job, outcome.error)
        self.publish_state(contract.COORDINATOR_SUMMARY.topic(self.me, printer), summary)
        self.storage.page(printer, command.job, final=True)
        log.info("%s: job %s %s: %d layers captured, %d images, %d failures, %.1f s held",
                 printer, command.job, summary.outcome, len(summary.layers_captured), summary.images,
                 len(summary.failures), summary.total_hold_time)  # fmt: skip

    def _remember(self, printer: str, md: LayerCapture) -> None:
        key = (printer, md.job)
        kept = self.published.setdefault(key, [])
        kept.append(md)
        del kept[:-LAYERS_KEPT]
        while len(self.published) > JOBS_KEPT:
            self.published.pop(next(iter(self.published)))

    def _log_capture(self, md: LayerCapture) -> None:
        t = md.timings
        failed = f", failed: {md.failures[0].message}" if md.failures else ""
        log.info("%s: layer %d: %d images, held %.2f s (moves %.2f, settle %.2f, capture %.2f, overhead %.3f)%s",
                 md.printer, md.layer, len(md.images), t.hold_duration, t.waiting_for_moves, t.settle, t.capture,
                 t.overhead, failed)  # fmt: skip
