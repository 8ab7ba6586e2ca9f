"""The shell around the pure hold machine: one lock, one state, and the effects carried out.

Two threads feed it. At a planned layer boundary OctoPrint's comm thread, inside the
``gcode.queuing`` hook, asks ``at_layer``: if the plan matches, the job goes on hold
right there and the layer's first line is kept back (the hook suppresses it), so not a
single line of that layer reaches the printer before the hold. Everything else (commands,
printer replies, ticks, OctoPrint events) is fed on the bridge's worker thread, where the
effects that talk to OctoPrint or the broker run. The kept-back line is sent just before
the job is let go, after the head is back; it is dropped only when the print ended.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from octoprint_printmesh.gcode import Modes, parse_position, token_in
from octoprint_printmesh.logic import hold as machine
from octoprint_printmesh.logic.hold_types import (
    Action,
    HoldConfig,
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
    TokenSeen,
)
from printmesh_core.commands import error
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import PrinterHold

log = logging.getLogger("octoprint.plugins.printmesh.hold")

Answer = Callable[[CommandResponse], None]


@dataclass(frozen=True)
class Effects:
    """What the hold needs from OctoPrint and the broker; the plugin supplies these."""

    set_job_on_hold: Callable[[bool], None]
    send: Callable[[Sequence[str]], None]  # printer.commands, tagged as ours
    event: Callable[[str, dict[str, Any]], None]  # <node>/printer/event, source printmesh
    status: Callable[[PrinterHold], None]  # retained <node>/printer/hold
    handoff: Callable[[list[Action]], None]  # run these on the worker thread, in order


class HoldDriver:
    def __init__(self, config: HoldConfig, effects: Effects, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.fx = effects
        self.clock = clock
        self.state = HoldState()
        self.modes = Modes()  # tracked from the lines sent (comm thread); read when the origin is reported
        self.active = False  # read without the lock by the comm-thread hooks
        self.stashed: str | None = None  # layer N's first line, kept back by the hold
        self.context: dict[str, Any] = {}  # file and start time, added to the 'held' event
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[str | None, Answer]] = {}
        self._keys = itertools.count(1)
        self._last_status: str | None = None

    # ------------------------------------------------------------- comm thread
    def at_layer(self, event: LayerEvent, line: str) -> bool:
        """A layer starts at ``line``; True when the job was put on hold before it (suppress it)."""
        with self._lock:
            if self.state.phase != "idle":  # only a hold-now draining races here: it holds anyway
                return False
            self.state, actions = machine.step(self.state, LayerReached.from_event(event), self.clock(), self.config)
            started = any(isinstance(a, SetJobOnHold) and a.on for a in actions)
            if started:
                self.stashed = line
                self.active = True
        if started:
            self.fx.set_job_on_hold(True)  # only takes OctoPrint's hold lock for a moment: no waiting
            self.fx.handoff([a for a in actions if not isinstance(a, SetJobOnHold)])
        return started

    def on_received(self, line: str) -> HoldInput | None:
        """A line from the printer, while a hold runs: the echo token or the M114 position."""
        token = token_in(line)
        if token is not None:
            return TokenSeen(token)
        if "X:" in line and "Z:" in line:
            pos = parse_position(line)
            if pos is not None:
                return OriginReported(pos["x"], pos["y"], pos["z"], self.modes)
        return None

    # ----------------------------------------------------------- worker thread
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

    def feed(self, event: HoldInput) -> None:
        """Step the machine and carry out its actions on the calling (non-comm) thread."""
        with self._lock:
            self.state, actions = machine.step(self.state, event, self.clock(), self.config)
            self.active = self.state.phase != "idle"
        if isinstance(event, PrintStopped | PrintStarted) and self.stashed is not None:
            log.info("print ended while held: the kept-back line %r is dropped", self.stashed)
            self.stashed = None
        self.run(actions)

    def run(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                self._do(action)
            except Exception:  # one failed effect must not stop the release that may follow
                log.exception("hold action %s failed", action)
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
            payload = dict(action.payload)
            if action.event == "held":
                payload.update({"z": self.state.layer_z, **self.context})
            if action.event in ("held", "released"):
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
        status = machine.status_payload(self.state, self.clock())
        body = status.model_dump_json(exclude={"ts"})
        if force or body != self._last_status:
            self._last_status = body
            self.fx.status(status)
