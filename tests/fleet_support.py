"""Printers that print on their own, for the coordinator fleet tests: message-level bridges on a real broker.

``PrintingBridge`` keeps the retained topics a bridge keeps (status, profile, state, job,
hold status) and answers ``hold``/``move``/``release`` through the core's command server, like
``coordinator_support.FakeBridge``; unlike it, it prints a job by itself, one layer every
``layer_time`` s, and keeps the real bridge's holder rules (``hold/machine.py``, ``hold/outage.py``):

* one armed plan and one holder; a ``hold`` request replaces both, and the holder's status is followed;
* a planned layer is held only while the holder is reachable (else it passes unheld, recorded as
  missed); the hold status (naming the holder) goes out first, then the ``held`` event, on the
  event stream and alone on ``printer/held``;
* the holder's ``offline`` releases a running hold at once and disarms the plan after
  ``HOLDER_GRACE`` s unless a hold request named a new holder meanwhile; a watchdog releases too;
* the plan is dropped when the print ends.

Every planned layer's fate is recorded (``Layer``), with who moved and released it (the
requester level of the MQTT 5 response topic), and every change of holder with the time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from coordinator_support import PROFILE

from printmesh_core import contract
from printmesh_core.commands import Command as Served
from printmesh_core.commands import CommandServer, error
from printmesh_core.config import MqttConfig
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.models.printer import (
    HoldPlan,
    HoldRequest,
    MoveRequest,
    PrinterEvent,
    PrinterHold,
    PrinterJob,
    PrinterState,
    ReleaseRequest,
    StateFlags,
)
from printmesh_core.mqtt import Message, MqttRuntime, Presence
from printmesh_core.topics import Topics

HOLDER_GRACE = 3.0  # s, as the bridge's hold/outage.py
MAX_HOLD = 30.0  # s, the watchdog


@dataclass
class Layer:
    """One planned layer: held (for whom), or passed unheld, and who moved and released it."""

    layer: int
    started: float  # time.monotonic()
    holder: str | None = None  # the plan's holder when the layer started
    hold_id: int | None = None
    movers: set[str] = field(default_factory=set)  # requesters (reply namespace level)
    releases: list[str] = field(default_factory=list)
    released_by: str | None = None  # 'requested', 'holder_offline', 'max_hold'
    missed: str | None = None  # why it passed unheld


def requester(message: Any) -> str:
    """``printmesh/reply/<requester>/...``: who asked."""
    topic = message.response_topic or ""
    parts = topic.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == contract.REPLY else topic


class PrintingBridge:
    def __init__(
        self, broker: Any, node: str, layers: int, every: int, layer_time: float, move_time: float = 0.02
    ) -> None:
        self.node, self.total, self.every, self.layer_time, self.move_time = node, layers, every, layer_time, move_time
        self.topics = Topics("printmesh", node)
        self.me = self.topics.component(contract.PRINTER)
        cfg = MqttConfig(host=broker.host, port=broker.port)
        self.runtime = MqttRuntime(cfg, "printmesh", f"printing-{node}", Presence(self.me.status, "printer", "t"))
        commands = [Served(contract.HOLD.name, HoldRequest, self._hold, deferred=True),
                    Served(contract.MOVE.name, MoveRequest, self._move, deferred=True),
                    Served(contract.RELEASE.name, ReleaseRequest, self._release, deferred=True)]  # fmt: skip
        self.server = CommandServer(self.runtime, self.topics, self.me, commands, workers=4)
        self.lock = threading.Condition()
        self.armed: HoldPlan | None = None
        self.holder: str | None = None
        self.online: dict[str, bool] = {}  # coordinator -> its last status
        self.disarm_at: float | None = None
        self.holders: list[tuple[float, str | None, bool]] = []  # (monotonic, new holder, printing)
        self.layers: dict[int, Layer] = {}
        self.current: Layer | None = None
        self.hold_seq = 0
        self.printing = False
        self.job_started: float | None = None

    # ------------------------------------------------------------ life
    def start(self) -> PrintingBridge:
        self.server.attach()
        coordinators = contract.wildcard(contract.COORDINATOR)
        contract.subscribe_presence(self.runtime, contract.STATUS, coordinators, self._coordinator)
        self.runtime.start()
        assert self.runtime.wait_connected(5)
        contract.PRINTER_PROFILE.publish(self.runtime, self.me, PROFILE)
        self._state()
        self._status()
        return self

    def stop(self) -> None:
        self.server.close()
        self.runtime.stop()

    def wait_armed(self, timeout: float = 30) -> str:
        with self.lock:
            assert self.lock.wait_for(lambda: self.armed is not None and self.holder is not None, timeout), self.node
            assert self.holder is not None
            return self.holder

    def print_job(self, file: str) -> threading.Thread:
        thread = threading.Thread(target=self._print, args=(file,), name=f"print-{self.node}", daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------ the print
    def _print(self, file: str) -> None:
        with self.lock:
            self.printing, self.job_started = True, round(time.time(), 3)
            self.layers.clear()
            job = PrinterJob(file_name=file, file_path=file, started_at=self.job_started)
        contract.PRINTER_JOB.publish(self.runtime, self.me, job)
        self._state()
        self._event("PrintStarted", {"name": file, "path": file}, "octoprint")
        for layer in range(1, self.total + 1):
            time.sleep(self.layer_time)
            self._layer(layer, file)
        with self.lock:
            self.printing, self.armed = False, None  # the bridge drops the plan when a print ends
            self._status()
        self._state()
        self._event("PrintDone", {"name": file, "path": file}, "octoprint")

    def _layer(self, layer: int, file: str) -> None:
        """Every ``every``-th layer is planned (the tests arm ``plan: {every: N}``); it is held if armed."""
        with self.lock:
            self._expire()
            if layer % self.every:
                return
            entry = self.layers[layer] = Layer(layer, time.monotonic(), self.holder)
            if self.armed is None:
                entry.missed = "not_armed"
                return
            if self.holder is not None and not self.online.get(self.holder, False):
                entry.missed = "holder_unreachable"
                return
            self.hold_seq += 1
            entry.hold_id, self.current = self.hold_seq, entry
            self._status()
        z = round(layer * 0.2, 3)
        body = {"hold_id": entry.hold_id, "layer": layer, "origin": {"x": 50.0, "y": 60.0, "z": z - 0.2}, "z": z,
                "path": file, "started_at": self.job_started}  # fmt: skip
        self._event(contract.HELD, body, "printmesh")
        with self.lock:  # the print waits for the release (or the watchdog, or the holder's will)
            end = time.monotonic() + MAX_HOLD
            while self.current is entry and time.monotonic() < end:
                self.lock.wait(0.1)
                self._expire()
            if self.current is entry:
                self._end("max_hold")

    def _end(self, reason: str, by: str | None = None) -> None:
        """Under the lock: the running hold ends."""
        entry = self.current
        assert entry is not None
        self.current, entry.released_by = None, reason
        if by is not None:
            entry.releases.append(by)
        self._status()
        data = {"hold_id": entry.hold_id, "layer": entry.layer, "reason": reason, "returned": True, "error": None}
        self._event(contract.RELEASED, data, "printmesh")
        self.lock.notify_all()

    def _expire(self) -> None:
        """Under the lock: the holder stayed offline for the grace: the plan is disarmed."""
        if self.disarm_at is not None and time.monotonic() >= self.disarm_at:
            self.disarm_at, self.armed = None, None
            self._set_holder(None)
            self._status()

    def _set_holder(self, holder: str | None) -> None:
        if holder != self.holder:
            self.holders.append((time.monotonic(), holder, self.printing))
        self.holder = holder

    # ------------------------------------------------------------ presence
    def _coordinator(self, presence: Any, message: Message) -> None:
        name = f"{message.topic.split('/')[1]}/{contract.COORDINATOR}"
        with self.lock:
            online = presence.state == "online"
            self.online[name] = online
            if name != self.holder:
                return
            if online:
                self.disarm_at = None
                return
            if self.current is not None:
                self._end("holder_offline")
            if self.disarm_at is None:
                self.disarm_at = time.monotonic() + HOLDER_GRACE

    # ------------------------------------------------------------ commands
    def _hold(self, request: Any, message: Any, reply: Any) -> None:
        with self.lock:
            self.armed, self.disarm_at = request.plan, None
            self._set_holder(request.holder)
            if request.holder is not None:
                self.online[request.holder] = True  # it asked, over the broker: it is there
            self._status()
            self.lock.notify_all()
        self._event("hold_armed", {"plan": request.plan.model_dump(), "holder": request.holder}, "printmesh")
        reply(CommandResponse(id=request.id, ok=True, data={"armed": request.plan.model_dump()}))

    def _move(self, request: Any, message: Any, reply: Any) -> None:
        with self.lock:
            entry = self.current
            if entry is None or request.hold_id != entry.hold_id:
                reply(error(request.id, "stale_hold", f"hold {request.hold_id} is not the running hold"))
                return
            entry.movers.add(requester(message))
        time.sleep(self.move_time)
        pos = {"x": request.x, "y": request.y, "z": request.z}
        reply(CommandResponse(id=request.id, ok=True, data={"hold_id": entry.hold_id, "layer": entry.layer,
                                                            "position": pos}))  # fmt: skip

    def _release(self, request: Any, message: Any, reply: Any) -> None:
        with self.lock:
            entry = self.current
            if entry is None or (request.hold_id is not None and request.hold_id != entry.hold_id):
                reply(CommandResponse(id=request.id, ok=True, data={"held": False}))
                return
            self._end("requested", requester(message))
        data = {"hold_id": entry.hold_id, "layer": entry.layer, "reason": "requested", "returned": True, "error": None}
        reply(CommandResponse(id=request.id, ok=True, data=data))

    # ------------------------------------------------------------ retained topics
    def _status(self) -> None:
        entry = self.current
        status = PrinterHold(phase="held" if entry else "idle", hold_id=entry.hold_id if entry else None,
                             layer=entry.layer if entry else None, holder=self.holder, armed=self.armed)  # fmt: skip
        contract.PRINTER_HOLD.publish(self.runtime, self.me, status)

    def _state(self) -> None:
        p = self.printing
        flags = StateFlags(operational=True, printing=p, ready=not p)
        contract.PRINTER_STATE.publish(self.runtime, self.me, PrinterState(text="Printing" if p else "Operational",
                                                                           flags=flags))  # fmt: skip

    def _event(self, name: str, payload: dict[str, Any], source: str) -> None:
        event = PrinterEvent(event=name, payload=payload, source=source)  # type: ignore[arg-type]
        contract.PRINTER_EVENT.publish(self.runtime, self.me, event)
        if name == contract.HELD:
            self.runtime.publish(contract.PRINTER_HELD.topic(self.me), event, qos=1)
