"""The coordinator's MQTT side: subscriptions turned into machine inputs, commands into requests.

Every printer's holds arrive with its event stream; each names the plan's holder, and only
that coordinator handles it (``sharing: owners``, the default: ``ownership.py`` decides who
arms, the bridge's one holder who holds). With ``sharing: subscription`` they arrive through
an MQTT 5 shared subscription to the bridge's ``<printer>/printer/held`` topic instead (one
message per hold and nothing else, so the broker's round robin alternates whole holds between
the members of the group), and the event stream's ``held`` copies are ignored. Everything a running
hold must not miss is retained and subscribed normally by every member: the bridge's
status, profile, hold status, job and state, the cameras' status and availability, and
the coordinators' own statuses. Answers come back on our own MQTT 5 response topics
(``reply/<requester>/<node>/<component>``, the reply namespace command servers honour), or
on the ``res/`` topics with MQTT 3.1.1; either way they are matched by request id, and
images by capture id (which is the request id).

Other coordinators' statuses: a machine only needs to know whether the holder named by its
bridge's hold status (another member of the fleet) is online. So the link follows the status
of exactly those holders, one subscription each, made when a hold status names one and
dropped when no printer of ours names it any more: at most one per printer, whatever is
published. (It used to follow every coordinator's status, ``+/coordinator/status``, and each
machine copied the whole set of them for every status: a flood of made-up coordinators cost
O(n) per message and never reached an end.) Whether the holder is online comes with the hold
status (``HoldStatusSeen.holder_online``), and a change of it as ``CoordinatorPresence``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel

from printmesh_coordinator.config import CoordinatorSection
from printmesh_coordinator.messages import (
    XYZ,
    ActivitySeen,
    Answer,
    BridgePresence,
    CameraPresence,
    Command,
    CoordinatorPresence,
    Held,
    HoldReleased,
    HoldStatusSeen,
    ImageArrived,
    Input,
    JobSeen,
    LayerMissedSeen,
    PrintEnded,
    ProfileSeen,
    SendCapture,
    SendHold,
    SendMove,
    SendRelease,
)
from printmesh_core import contract
from printmesh_core.contract import Unreadable
from printmesh_core.models.camera import CaptureRequest
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.models.layers import LayerOutlines
from printmesh_core.models.printer import (
    HoldEnded,
    HoldRequest,
    HoldStarted,
    LayerMissed,
    LayerProgress,
    MoveRequest,
    PrinterEvent,
    PrinterHeld,
    PrinterHold,
    PrinterState,
    ReleaseRequest,
)
from printmesh_core.models.status import Availability
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.requests import Correlator
from printmesh_core.topics import ComponentTopics, TopicError, Topics, join, requester_id

log = logging.getLogger("printmesh.coordinator.link")

Deliver = Callable[[str | None, Input], None]  # printer (None: every printer), input
Seen = Callable[[str, Any], None]  # printer, what was seen of it (its plan's holder; whether a job runs)
OWNERS_KEPT = 4096
Outcome = Literal["done", "failed", "cancelled"]
ENDINGS: dict[str, Outcome] = dict(zip(contract.PRINT_ENDINGS, ("done", "failed", "cancelled"), strict=True))


def held_input(body: HoldStarted, ts: float) -> Held:
    o = body.origin
    origin = XYZ(o.x, o.y, o.z) if o is not None else None
    return Held(body.hold_id, body.layer, body.z, origin, body.path, body.started_at, ts)


def event_input(event: PrinterEvent) -> Input | None:
    """The inputs hidden in ``<printer>/printer/event``: printmesh's hold events, OctoPrint's print endings.

    A hold event whose body is malformed raises ``Unreadable`` (the runtime counts it)."""
    if event.source == "printmesh" and event.event == contract.HELD:
        return held_input(contract.event_body(HoldStarted, event), event.ts)
    if event.source == "printmesh" and event.event == contract.RELEASED:
        b = contract.event_body(HoldEnded, event)
        return HoldReleased(hold_id=b.hold_id, reason=b.reason, returned=b.returned, error=b.error)
    if event.source == "printmesh" and event.event == contract.MISSED:
        m = contract.event_body(LayerMissed, event)
        return LayerMissedSeen(m.layer, m.z, m.reason, m.at, m.path, m.started_at, m.holder)
    outcome = ENDINGS.get(event.event) if event.source == "octoprint" else None
    return PrintEnded(outcome) if outcome is not None else None


def parse_event(payload: bytes) -> Input | None:
    """``event_input`` from raw bytes, read leniently (the bridge may add fields); None if unreadable."""
    try:
        return event_input(contract.read(PrinterEvent, payload))
    except Unreadable:
        return None


class Link:
    def __init__(
        self, runtime: MqttRuntime, topics: Topics, me: ComponentTopics, section: CoordinatorSection, deliver: Deliver
    ) -> None:
        self.runtime = runtime
        self.topics = topics
        self.me = me
        self.section = section
        self.deliver = deliver
        self.v5 = runtime.config.protocol == "5"
        self.requester = requester_id(runtime.config.username, me.node_id, me.component)
        self.requests: Correlator[str] = Correlator(
            runtime, self._answer, requester=self.requester if self.v5 else None, kept=OWNERS_KEPT
        )
        # Network thread only: the holder each printer's hold status names, and those we follow.
        self.holder_of: dict[str, str | None] = {p.node: None for p in section.printers}
        self.holders: dict[str, bool] = {}  # holder -> heard online; one entry per printer at most
        self.holder_filters: dict[str, str] = {}  # holder -> our subscription to its status
        self.layer_totals: dict[str, int] = {}  # printer -> layers in its file: the summary lists each planned one
        self.outlines: dict[str, LayerOutlines] = {}  # printer -> its file's layer outlines, for the print watch
        self.on_holder: Seen = lambda printer, holder: None  # the fleet's (fleet.py), with sharing: owners
        self.on_active: Seen = lambda printer, active: None

    def printer(self, node: str) -> ComponentTopics:
        return contract.component(self.topics, contract.PRINTER, node)

    def camera(self, node: str) -> ComponentTopics:
        return contract.component(self.topics, contract.CAMERA, node)

    # ------------------------------------------------------------ subscribing
    def attach(self) -> None:
        """Subscribe before connecting: the runtime restores all of it on every connect."""
        rt = self.runtime
        cameras: dict[str, set[str]] = {}
        group = self.section.share_group if self.section.shared_subscription else None
        for printer in self.section.printers:
            p, node = self.printer(printer.node), printer.node
            contract.subscribe_presence(rt, contract.STATUS, p, partial(self._presence, node))
            contract.PRINTER_PROFILE.subscribe(rt, p, partial(self._retained, node, ProfileSeen))
            contract.PRINTER_HOLD.subscribe(rt, p, partial(self._hold_status, node))
            contract.PRINTER_JOB.subscribe(rt, p, partial(self._retained, node, JobSeen))
            contract.PRINTER_STATE.subscribe(rt, p, partial(self._activity, node))
            contract.PRINTER_LAYER_PROGRESS.subscribe(rt, p, partial(self._layer_total, node))
            if printer.watch.enabled:
                contract.PRINTER_OUTLINES.subscribe(rt, p, partial(self._outlines, node))
            if group is not None:
                held = self.topics.absolute(contract.PRINTER_HELD.topic(p))
                on_held = contract.PRINTER_HELD.reader(partial(self._held, node))
                rt.subscribe(join("$share", group, held), on_held, qos=1)
                contract.PRINTER_EVENT.subscribe(rt, p, partial(self._event, node, False))
            else:
                contract.PRINTER_EVENT.subscribe(rt, p, partial(self._event, node, True))
            if not self.v5:
                for command in (contract.HOLD, contract.MOVE, contract.RELEASE, contract.PAUSE):
                    self.requests.watch(p, command.name)
            for ref in printer.cameras:
                cameras.setdefault(ref.node, set()).add(ref.camera)
        for cam_node, names in cameras.items():
            c = self.camera(cam_node)
            contract.subscribe_presence(rt, contract.STATUS, c, partial(self._camera, cam_node, None))
            for name in sorted(names):
                contract.subscribe_presence(
                    rt, contract.CAMERA_AVAILABILITY, c, partial(self._camera, cam_node, name), name
                )
                contract.CAMERA_IMAGE.subscribe_raw(rt, c, self._image, name)
            if not self.v5:
                self.requests.watch(c, contract.CAPTURE.name)
        self.requests.attach()

    def _retained(self, printer: str, wrap: Callable[[Any], Input], value: BaseModel, message: Message) -> None:
        self.deliver(printer, wrap(value))

    def _layer_total(self, printer: str, progress: LayerProgress, message: Message) -> None:
        if progress.total:
            self.layer_totals[printer] = progress.total

    def _outlines(self, printer: str, outlines: LayerOutlines, message: Message) -> None:
        self.outlines[printer] = outlines  # read by the watch after a hold (one assignment: no lock needed)

    def _presence(self, printer: str, status: Availability, message: Message) -> None:
        self.deliver(printer, BridgePresence(status.state == "online"))

    def _activity(self, printer: str, state: PrinterState, message: Message) -> None:
        f = state.flags
        active = f.printing or f.paused or f.pausing or f.resuming or f.finishing or f.cancelling or state.on_hold
        self.on_active(printer, bool(active))
        self.deliver(printer, ActivitySeen(bool(active)))

    def _held(self, printer: str, held: PrinterHeld, message: Message) -> None:
        """The shared ``held`` topic: one message per hold, and nothing else."""
        self.deliver(printer, held_input(held.payload, held.ts))

    def _event(self, printer: str, holds: bool, event: PrinterEvent, message: Message) -> None:
        """``holds``: take ``held`` from this subscription (the only one; else the shared topic has it)."""
        parsed = event_input(event)
        if parsed is not None and (holds or not isinstance(parsed, Held)):
            self.deliver(printer, parsed)

    def _camera(self, node: str, camera: str | None, status: Availability, message: Message) -> None:
        presence = CameraPresence(node, camera, status.state == "online", status.reason)
        for printer in self.section.printers:
            if any(ref.node == node and (camera is None or ref.camera == camera) for ref in printer.cameras):
                self.deliver(printer.node, presence)

    def hold_status(self, printer: str, status: PrinterHold) -> None:
        """The bridge's hold status, with whether its holder is a coordinator heard online."""
        old, holder = self.holder_of.get(printer), status.holder
        self.holder_of[printer] = holder
        if old is not None and old != holder and old not in self.holder_of.values():
            self._unfollow(old)
        if holder is not None and holder != self.me_holder and holder not in self.holders:
            self._follow(holder)
        online = self.holders.get(holder, False) if holder is not None else False
        self.on_holder(printer, holder)
        self.deliver(printer, HoldStatusSeen(status, online))

    @property
    def me_holder(self) -> str:
        return f"{self.me.node_id}/{self.me.component}"

    def _follow(self, holder: str) -> None:
        node, _, component = holder.partition("/")
        try:
            base = contract.component(self.topics, component, node)
        except TopicError:
            return  # not '<node>/<component>': nobody we could hear from
        self.holders[holder] = False
        self.holder_filters[holder] = self.topics.absolute(contract.STATUS.filter(base))
        contract.subscribe_presence(self.runtime, contract.STATUS, base, partial(self._holder_status, holder))

    def _unfollow(self, holder: str) -> None:
        self.holders.pop(holder, None)
        topic_filter = self.holder_filters.pop(holder, None)
        if topic_filter is not None:
            self.runtime.unsubscribe(topic_filter)

    def _hold_status(self, printer: str, status: PrinterHold, message: Message) -> None:
        self.hold_status(printer, status)

    def _holder_status(self, holder: str, presence: Availability, message: Message) -> None:
        """The status of a holder one of our printers names: handed to those printers' machines."""
        if holder not in self.holders:
            return  # unfollowed meanwhile
        online = presence.state == "online"
        self.holders[holder] = online
        for printer, named in self.holder_of.items():
            if named == holder:
                self.deliver(printer, CoordinatorPresence(holder, online))

    def _answer(self, printer: str, response: CommandResponse) -> None:
        error = response.error
        answer = Answer(response.id or "", response.ok, response.data, error.code if error else None,
                        error.message if error else None)  # fmt: skip
        self.deliver(printer, answer)

    def _image(self, message: Message) -> None:
        capture_id = message.topic.rsplit("/", 1)[-1]
        owner = self.requests.owner(capture_id)
        if owner is not None and message.payload:
            data = message.payload
            self.deliver(owner, ImageArrived(capture_id, data, hashlib.sha256(data).hexdigest()))

    # ---------------------------------------------------------------- sending
    def send(self, printer: str, command: Command) -> None:
        if isinstance(command, SendHold):
            request = HoldRequest(id=command.request_id, plan=command.plan, holder=command.holder)
            self.requests.send(self.printer(printer), contract.HOLD.name, request, printer)
        elif isinstance(command, SendMove):
            move = MoveRequest(id=command.request_id, x=command.x, y=command.y, z=command.z,
                               feedrate=command.feedrate, hold_id=command.hold_id)  # fmt: skip
            self.requests.send(self.printer(printer), contract.MOVE.name, move, printer)
        elif isinstance(command, SendRelease):
            release = ReleaseRequest(id=command.request_id, hold_id=command.hold_id)
            self.requests.send(self.printer(printer), contract.RELEASE.name, release, printer)
        elif isinstance(command, SendCapture):
            capture = CaptureRequest(id=command.request_id, camera=command.camera, label=command.label,
                                     width=command.width, height=command.height, quality=command.quality)  # fmt: skip
            self.requests.send(self.camera(command.node), contract.CAPTURE.name, capture, printer)
