"""The shell around the pure hold machine: one lock, one state, and the effects carried out.

This driver is the only writer of the hold's state: everything outside ``hold`` calls its
named methods (``print_started``, ``line_tracked``, ``reconnected`` ...), never a field.

Two threads step it. At a planned layer boundary OctoPrint's comm thread, inside the
``gcode.queuing`` hook, asks ``at_layer``: if the plan matches, the job goes on hold
right there and the layer's first line is kept back (the hook suppresses it), so not a
single line of that layer reaches the printer before the hold. Everything else (commands,
printer replies, ticks, OctoPrint events) is queued for the hold's own thread, where the effects
that talk to OctoPrint or the broker run. The kept-back line is sent just before the job is
let go, after the head is back; it is dropped only when the print ended.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, TOKEN_PREFIX, Flavour, Modes, token_in
from octoprint_printmesh.hold import machine
from octoprint_printmesh.hold.tracked import TrackedModes
from octoprint_printmesh.hold.types import (
    Action,
    BrokerBack,
    BrokerLost,
    HoldConfig,
    HolderOffline,
    HolderOnline,
    HoldInput,
    HoldState,
    LayerReached,
    OriginReported,
    PrintStarted,
    PrintStopped,
    PublishEvent,
    Reply,
    SendGcode,
    SetJobOnHold,
    Tick,
    TokenSeen,
)
from octoprint_printmesh.hold.views import job_command_refusal, status_payload
from printmesh_core import contract
from printmesh_core.commands import error
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import PrinterHold

log = logging.getLogger("octoprint.plugins.printmesh.hold")

Answer = Callable[[CommandResponse], None]
QUEUE_LIMIT = 10_000
TICK = 0.2  # seconds between deadline checks while a hold runs
ORIGIN_GRACE = 2.0  # s the drain's echo waits for the M114 position sent before it (then held without one)


@dataclass(frozen=True)
class Effects:
    """What the hold needs from OctoPrint and the broker; the printer node binds these."""

    set_job_on_hold: Callable[[bool], None]
    send: Callable[[Sequence[str]], None]  # printer.commands, tagged as ours
    event: Callable[[str, dict[str, Any]], None]  # <node>/printer/event, source printmesh
    status: Callable[[PrinterHold], None]  # retained <node>/printer/hold
    # an input or action that raised: counted in the node's status (``failed``) and logged at a bounded rate
    failed: Callable[[str, BaseException], None] = lambda what, exc: log.error("%s failed", what, exc_info=exc)


class HoldDriver:
    def __init__(self, config: HoldConfig, effects: Effects, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.fx = effects
        self.clock = clock
        self.flavour: Flavour = DEFAULT_FLAVOUR  # the firmware's (firmware_flavour.FLAVOUR sets it)
        self.state = HoldState()
        self.tracked = TrackedModes()  # from the lines queued (comm thread); read when the origin is reported
        self.active = False  # read without the lock by the comm-thread hooks
        self.stashed: str | None = None  # layer N's first line, kept back by the hold
        self._early: tuple[str, float] | None = None  # the drain's echo before its position (hold thread)
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[str | None, Answer]] = {}
        self._keys = itertools.count(1)
        self._last_status: str | None = None
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(QUEUE_LIMIT)
        self._worker = threading.Thread(target=self._work, name="printmesh-hold", daemon=True)
        self.dropped = 0

    # ------------------------------------------------------- the hold's thread
    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._worker.join(5)

    def submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the hold's thread, in order; never blocks the caller."""
        try:
            self._queue.put_nowait(fn)
        except queue.Full:
            self.dropped += 1

    def _work(self) -> None:
        self.publish_status(force=True)  # the first status, before anything else
        while True:
            try:
                fn = self._queue.get(timeout=TICK if self.active or self.waiting else None)
            except queue.Empty:
                fn = self._noop
            if fn is None:
                return
            try:
                fn()
                if self.active or self.waiting:  # deadlines are checked on every input; a tick covers quiet spells
                    self.feed(Tick())
            except Exception as exc:
                self.fx.failed("hold input", exc)

    def _noop(self) -> None:
        pass

    # ------------------------------------------------------------- comm thread
    def at_layer(self, event: LayerEvent, line: str) -> bool:
        """A layer starts at ``line``; True when the job was put on hold before it (suppress it)."""
        with self._lock:
            if self.state.phase != "idle":  # only a hold-now draining races here: it holds anyway
                return False
            self.state, actions = machine.step(self.state, LayerReached.from_event(event), self.clock(), self.config)
            started = any(isinstance(a, SetJobOnHold) and a.on for a in actions)
            if started:
                self.stashed = line or None  # a layer mark (an at-command) is never sent: nothing kept back
                self.active = True
        if started:
            self.fx.set_job_on_hold(True)  # only takes OctoPrint's hold lock for a moment: no waiting
            rest: list[Action] = [a for a in actions if not isinstance(a, SetJobOnHold)]
            self.submit(lambda: self.run(rest))
        return started

    def line_tracked(self, line: str) -> None:
        """A line that changes the modes a hold must restore (G90/M83/F/G28) was queued."""
        self.tracked.line(line, self.flavour)

    @property
    def modes(self) -> Modes:
        return self.tracked.read(self.flavour)

    def echoed(self, action: str) -> None:
        """An action command from the printer (``//action:<action>``): a hold's echo token, maybe."""
        if self.active and action.startswith(TOKEN_PREFIX):
            token = token_in(action)
            if token is not None:
                self.submit(lambda: self._token_seen(token))

    # ----------------------------------------------- OctoPrint's event thread, the broker
    def position(self, payload: Mapping[str, Any] | None) -> None:
        """OctoPrint's ``PositionUpdate`` (an M114 reply): while a hold runs, its origin."""
        if not self.active or not payload:
            return
        axes = [payload.get(a) for a in "xyz"]
        numbers = [float(v) for v in axes if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == 3 and all(math.isfinite(v) for v in numbers):  # a garbled M114 reply is no origin
            self._later(OriginReported(numbers[0], numbers[1], numbers[2], self.modes))

    def print_started(self, path: str | None, at: float) -> None:
        self._later(PrintStarted(path, at))

    def print_stopped(self, reason: str) -> None:
        self._later(PrintStopped(reason))

    def cancel_requested(self) -> None:
        """Release before OctoPrint tears the job down (runs now, on the command's thread)."""
        self.feed(PrintStopped("cancel requested"))

    def connection_changed(self) -> None:
        """A new connection: nothing is known to be homed."""
        self.tracked.reset()

    def broker_lost(self) -> None:
        """Nobody can move or release a hold without the broker: let the print go on (the plan stays armed)."""
        self._later(BrokerLost())

    def broker_back(self) -> None:
        """Connected again: the holder's status is checked anew before the plan holds (hold/outage.py)."""
        self._later(BrokerBack())

    def holder_offline(self, holder: str) -> None:
        self._later(HolderOffline(holder))

    def holder_online(self, holder: str) -> None:
        self._later(HolderOnline(holder))

    @property
    def waiting(self) -> bool:
        """The holder's status is awaited (a deadline runs while no hold does)."""
        return self.state.reach.deadline is not None

    def refusal(self, command: str) -> str | None:
        """Why OctoPrint's pause/resume must wait for the hold, or None."""
        return job_command_refusal(self.state, command)

    def _later(self, event: HoldInput) -> None:
        self.submit(lambda: self.feed(event))

    # ------------------------------------------- hold thread: the drain's order
    def _token_seen(self, token: str) -> None:
        """The echo comes on the comm thread, the M114 position sent before it on the event
        thread: if the drain's echo overtook its position, it waits for it (or ``ORIGIN_GRACE``)."""
        state = self.state
        if state.phase == "draining" and token == state.token and state.origin is None:
            self._early = (token, self.clock() + ORIGIN_GRACE)
            return
        self.feed(TokenSeen(token))

    def _early_token(self, origin_seen: bool) -> None:
        early = self._early
        if early is not None and (origin_seen or self.clock() >= early[1] or self.state.token != early[0]):
            self._early = None
            if self.state.token == early[0]:
                self.feed(TokenSeen(early[0]))

    # ------------------------------------------------------------ hold thread
    def register(self, request_id: str | None, answer: Answer) -> str:
        """A key for the machine's Reply actions that finds this request's answer later."""
        key = f"k{next(self._keys)}"
        with self._lock:
            self._answers[key] = (request_id, answer)
        return key

    def refuse(self, key: str, code: str, message: str) -> None:
        request_id, answer = self._answers.pop(key, (None, None))
        if answer is not None:
            answer(error(request_id, code, message))

    def reconnected(self) -> None:
        """After a (re)connect: the broker may have lost the retained status."""
        self.submit(lambda: self.publish_status(force=True))

    def feed(self, event: HoldInput) -> None:
        """Step the machine and carry out its actions on the calling thread (never the comm thread)."""
        with self._lock:
            self.state, actions = machine.step(self.state, event, self.clock(), self.config)
            self.active = self.state.phase != "idle"
        if self._early is not None:  # the drain's echo that came before its position
            self._early_token(isinstance(event, OriginReported))
        if isinstance(event, PrintStopped | PrintStarted) and self.stashed is not None:
            log.info("print ended while held: the kept-back line %r is dropped", self.stashed)
            self.stashed = None
        self.run(actions)

    def run(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                self._do(action)
            except Exception as exc:  # one failed effect must not stop the release that may follow
                self.fx.failed(f"hold action {type(action).__name__}", exc)
        self.publish_status()

    def _do(self, action: Action) -> None:
        if isinstance(action, SetJobOnHold):
            if not action.on and self.stashed is not None:
                line, self.stashed = self.stashed, None
                self.fx.send([line])  # queued behind the return lines, before any file line
            self.fx.set_job_on_hold(action.on)
        elif isinstance(action, SendGcode):
            self.fx.send(action.lines)
        elif isinstance(action, PublishEvent):
            payload = action.payload
            if action.event in (contract.HELD, contract.RELEASED, contract.MISSED):
                log.info("hold %s at layer %s %s (%s)", payload.get("hold_id"), payload.get("layer"),
                         action.event, payload.get("reason") or payload.get("origin"))  # fmt: skip
            self.fx.event(action.event, payload)
        elif isinstance(action, Reply):
            self._answer(action)

    def _answer(self, reply: Reply) -> None:
        with self._lock:
            request_id, answer = self._answers.pop(reply.cmd_id, (None, None))
        if answer is None:
            return
        if reply.ok:
            answer(CommandResponse(id=request_id, ok=True, data=reply.data))
        else:
            details = [reply.data] if reply.data and any(v is not None for v in reply.data.values()) else None
            answer(error(request_id, reply.code or "failed", reply.message or "failed", details))

    def publish_status(self, force: bool = False) -> None:
        status = status_payload(self.state, self.clock())
        body = status.model_dump_json(exclude={"ts"})
        if force or body != self._last_status:
            self._last_status = body
            self.fx.status(status)
