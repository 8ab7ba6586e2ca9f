"""The coordinator's MQTT side: subscriptions turned into machine inputs, commands into requests.

Every printer's holds arrive through an MQTT 5 shared subscription to the bridge's
``<printer>/printer/held`` topic (one message per hold and nothing else, so the broker's
round robin alternates whole holds between the members of the group): coordinators in one
group each get a share of the holds and no hold is handled twice. The event stream is
subscribed normally by every member (its ``held`` copies then ignored). Everything a running
hold must not miss is retained and subscribed normally by every member: the bridge's
status, profile, hold status, job and state, the cameras' status and availability, and
the coordinators' own statuses. Answers come back on our own MQTT 5 response topics
(``reply/<requester>/<node>/<component>``, the reply namespace command servers honour), or
on the ``res/`` topics with MQTT 3.1.1; either way they are matched by request id, and
images by capture id (which is the request id).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

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
    PrintEnded,
    ProfileSeen,
    SendCapture,
    SendHold,
    SendMove,
    SendRelease,
)
from printmesh_core.models.camera import CaptureRequest
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.models.printer import (
    HoldRequest,
    MoveRequest,
    PrinterHold,
    PrinterJob,
    PrinterProfile,
    PrinterState,
    ReleaseRequest,
)
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import ComponentTopics, Topics, join, reply_filter, reply_topic, requester_id

log = logging.getLogger("printmesh.coordinator.link")

Deliver = Callable[[str | None, Input], None]  # printer (None: every printer), input
OWNERS_KEPT = 4096
Outcome = Literal["done", "failed", "cancelled"]
ENDINGS: dict[str, Outcome] = {"PrintDone": "done", "PrintFailed": "failed", "PrintCancelled": "cancelled"}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_event(payload: bytes) -> Input | None:
    """The inputs hidden in ``<printer>/printer/event``; read leniently, the bridge may add fields."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("event"), str):
        return None
    raw = doc.get("payload")
    body: dict[str, Any] = raw if isinstance(raw, dict) else {}
    name = doc["event"]
    if doc.get("source") == "printmesh":
        hold_id = _num(body.get("hold_id"))
        if name == "held" and hold_id is not None:
            o = body.get("origin")
            origin = None
            if isinstance(o, dict) and all(_num(o.get(k)) is not None for k in "xyz"):
                origin = XYZ(float(o["x"]), float(o["y"]), float(o["z"]))
            layer = _num(body.get("layer"))
            path = body.get("path")
            return Held(hold_id=int(hold_id), layer=int(layer) if layer is not None else None,
                        z=_num(body.get("z")), origin=origin, path=path if isinstance(path, str) else None,
                        started_at=_num(body.get("started_at")), ts=_num(doc.get("ts")) or 0.0)  # fmt: skip
        if name == "released":
            reason, returned, error = body.get("reason"), body.get("returned"), body.get("error")
            return HoldReleased(
                hold_id=int(hold_id) if hold_id is not None else None,
                reason=reason if isinstance(reason, str) else None,
                returned=returned if isinstance(returned, bool) else None,
                error=error if isinstance(error, str) else None,
            )
        return None
    outcome = ENDINGS.get(name)
    return PrintEnded(outcome) if outcome is not None else None


def _model(cls: type[BaseModel], message: Message) -> Any:
    if not message.payload:
        return None
    try:
        return cls.model_validate_json(message.payload)
    except ValidationError as exc:
        log.warning("ignoring unreadable %s on %s: %s", cls.__name__, message.topic, exc.errors()[0]["msg"])
        return None


def _online(message: Message) -> bool | None:
    try:
        state = json.loads(message.payload).get("state")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return state == "online" if state in ("online", "offline") else None


def _reason(message: Message) -> str | None:
    try:
        reason = json.loads(message.payload).get("reason")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return reason if isinstance(reason, str) else None


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
        self._owners: OrderedDict[str, str] = OrderedDict()  # request id -> printer
        self._lock = threading.Lock()

    def printer(self, node: str) -> ComponentTopics:
        return self.topics.component("printer", node)

    def camera(self, node: str) -> ComponentTopics:
        return self.topics.component("camera", node)

    # ------------------------------------------------------------ subscribing
    def attach(self) -> None:
        """Subscribe before connecting: the runtime restores all of it on every connect."""
        sub = self.runtime.subscribe_relative
        cameras: dict[str, set[str]] = {}
        for printer in self.section.printers:
            p, node = self.printer(printer.node), printer.node
            sub(p.status, partial(self._presence, node), qos=1)
            sub(p.sub("profile"), partial(self._retained, node, PrinterProfile, ProfileSeen), qos=1)
            sub(p.sub("hold"), partial(self._retained, node, PrinterHold, HoldStatusSeen), qos=1)
            sub(p.sub("job"), partial(self._retained, node, PrinterJob, JobSeen), qos=1)
            sub(p.state, partial(self._activity, node), qos=1)
            if self.section.share_group:
                shared = join("$share", self.section.share_group, self.topics.absolute(p.sub("held")))
                self.runtime.subscribe(shared, partial(self._event, node, True), qos=1)
                sub(p.event, partial(self._event, node, False), qos=1)
            else:
                sub(p.event, partial(self._event, node, True), qos=1)
            if not self.v5:
                for name in ("hold", "move", "release"):
                    sub(p.res(name), self._answer, qos=1)
            for ref in printer.cameras:
                cameras.setdefault(ref.node, set()).add(ref.camera)
        for cam_node, names in cameras.items():
            c = self.camera(cam_node)
            sub(c.status, partial(self._camera, cam_node, None), qos=1)
            for name in sorted(names):
                sub(c.sub(name, "availability"), partial(self._camera, cam_node, name), qos=1)
                sub(join(c.sub(name, "capture"), "+"), self._image, qos=1)
            if not self.v5:
                sub(c.res("capture"), self._answer, qos=1)
        sub(join("+", "coordinator", "status"), self._coordinator, qos=1)
        if self.v5:
            sub(reply_filter(self.requester), self._answer, qos=1)

    def _retained(self, printer: str, cls: type[BaseModel], wrap: Callable[[Any], Input], message: Message) -> None:
        value = _model(cls, message)
        if value is not None:
            self.deliver(printer, wrap(value))

    def _presence(self, printer: str, message: Message) -> None:
        online = _online(message)
        if online is not None:
            self.deliver(printer, BridgePresence(online))

    def _activity(self, printer: str, message: Message) -> None:
        state = _model(PrinterState, message)
        if state is not None:
            f = state.flags
            active = f.printing or f.paused or f.pausing or f.resuming or f.finishing or f.cancelling or state.on_hold
            self.deliver(printer, ActivitySeen(bool(active)))

    def _event(self, printer: str, holds: bool, message: Message) -> None:
        """``holds``: take ``held`` from this subscription (the shared one, or the only one)."""
        parsed = parse_event(message.payload)
        if parsed is not None and (holds or not isinstance(parsed, Held)):
            self.deliver(printer, parsed)

    def _camera(self, node: str, camera: str | None, message: Message) -> None:
        online = _online(message)
        if online is None:
            return
        presence = CameraPresence(node, camera, online, _reason(message))
        for printer in self.section.printers:
            if any(ref.node == node and (camera is None or ref.camera == camera) for ref in printer.cameras):
                self.deliver(printer.node, presence)

    def _coordinator(self, message: Message) -> None:
        relative = self.topics.relative(message.topic) or ""
        online = _online(message)
        if online is not None and relative.count("/") == 2:
            self.deliver(None, CoordinatorPresence(relative.rsplit("/", 1)[0], online))

    def _answer(self, message: Message) -> None:
        response = _model(CommandResponse, message)
        if response is None or response.id is None:
            return
        with self._lock:
            owner = self._owners.get(response.id)
        if owner is None:
            return  # another coordinator's (on the shared res/ topics), or long forgotten
        error = response.error
        answer = Answer(response.id, response.ok, response.data, error.code if error else None,
                        error.message if error else None)  # fmt: skip
        self.deliver(owner, answer)

    def _image(self, message: Message) -> None:
        capture_id = message.topic.rsplit("/", 1)[-1]
        with self._lock:
            owner = self._owners.get(capture_id)
        if owner is not None and message.payload:
            data = message.payload
            self.deliver(owner, ImageArrived(capture_id, data, hashlib.sha256(data).hexdigest()))

    # ---------------------------------------------------------------- sending
    def send(self, printer: str, command: Command) -> None:
        if isinstance(command, SendHold):
            request: BaseModel = HoldRequest(id=command.request_id, plan=command.plan, holder=command.holder)
            self._request(printer, self.printer(printer), "hold", command.request_id, request)
        elif isinstance(command, SendMove):
            request = MoveRequest(id=command.request_id, x=command.x, y=command.y, z=command.z,
                                  feedrate=command.feedrate, hold_id=command.hold_id)  # fmt: skip
            self._request(printer, self.printer(printer), "move", command.request_id, request)
        elif isinstance(command, SendRelease):
            self._request(printer, self.printer(printer), "release", command.request_id,
                          ReleaseRequest(id=command.request_id, hold_id=command.hold_id))  # fmt: skip
        elif isinstance(command, SendCapture):
            request = CaptureRequest(id=command.request_id, camera=command.camera, label=command.label,
                                     width=command.width, height=command.height, quality=command.quality)  # fmt: skip
            self._request(printer, self.camera(command.node), "capture", command.request_id, request)

    def _request(self, printer: str, target: ComponentTopics, name: str, request_id: str, body: BaseModel) -> None:
        with self._lock:
            self._owners[request_id] = printer
            while len(self._owners) > OWNERS_KEPT:
                self._owners.popitem(last=False)
        payload = body.model_dump_json(exclude_none=True, exclude_defaults=True)
        if self.v5:
            topic = self.topics.absolute(target.cmd(name))
            reply = self.topics.absolute(reply_topic(self.requester, target))
            self.runtime.publish_absolute(topic, payload, qos=1, response_topic=reply)
        else:
            self.runtime.publish(target.cmd(name), payload, qos=1)
