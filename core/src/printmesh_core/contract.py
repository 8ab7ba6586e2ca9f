"""The topic contract: every topic printmesh uses, with the model of its payload.

``topics.py`` knows how a topic name is built; this module knows *which* topics exist and
what travels on them. Publishers and subscribers both go through a route, so a topic
level is spelled once, here, and both ends agree on the model::

    contract.PRINTER_JOB.publish(runtime, me, job)                  # typed: a PrinterJob
    contract.PRINTER_JOB.subscribe(runtime, printer, on_job)        # on_job(job: PrinterJob, message)

Readers tolerate newer writers. A farm is upgraded one machine at a time, so a message from a newer process may
carry fields this one does not know: ``Route.read`` ignores them (``extra="ignore"``, nested models included)
instead of dropping the message. Our own output stays strict: the models forbid unknown fields when we build
them. Command requests are the exception on purpose: a request is an instruction, and one we cannot fully carry
out is refused with an error naming the field (see ``commands.parse``); requesters leave defaults out, so a
newer requester only sends a new field when it wants the new behaviour. Tolerant of new fields, strict in types:
``read`` screens the bytes (``inbound.screen``), then validates strictly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from printmesh_core.inbound import IMAGE_LIMIT, JSON_LIMIT, LAYERS_LIMIT, PRESS_LIMIT, Rejected, screen
from printmesh_core.models.base import Payload
from printmesh_core.models.camera import CamerasRequest, CaptureRequest, CaptureResult
from printmesh_core.models.coordinator import AbortRequest, CoordinatorFleet, CoordinatorState, JobSummary, LayerCapture
from printmesh_core.models.envelope import CommandRequest
from printmesh_core.models.host import HostState, RefreshRequest, ShellResult
from printmesh_core.models.layers import LayerEvent, LayerOutlines, LayerTable
from printmesh_core.models.printer import (
    CancelRequest,
    GcodeRequest,
    HoldRequest,
    LayerProgress,
    MoveRequest,
    PauseRequest,
    PrinterConnection,
    PrinterEvent,
    PrinterFans,
    PrinterHeatingEta,
    PrinterHeld,
    PrinterHold,
    PrinterJob,
    PrinterProfile,
    PrinterState,
    PrinterTemperatures,
    ReleaseRequest,
    ResumeRequest,
)
from printmesh_core.models.sensors import ReadRequest, SensorHealth, SensorReading
from printmesh_core.models.status import Availability, Status
from printmesh_core.models.watch import WatchVerdict
from printmesh_core.mqtt import Handler, Message, MqttRuntime
from printmesh_core.topics import REPLY as topics_reply
from printmesh_core.topics import ComponentTopics, Topics, check_segment, join

M = TypeVar("M", bound=Payload)
B = TypeVar("B", bound=BaseModel)
R = TypeVar("R", bound=CommandRequest)

ANY = "+"  # a level named when the topic is built: a camera, a sensor, a capture id
PRINTER, CAMERA, HOST, SENSORS, COORDINATOR = "printer", "camera", "host", "sensors", "coordinator"
# every component's own levels (topics.py): no camera, sensor or printer below it may take one
COMPONENT_LEVELS = frozenset({"cmd", "res", "status", "state", "event"})
HELD, RELEASED, MISSED = "held", "released", "missed"  # printmesh's own events on <node>/printer/event
PRINT_ENDINGS = ("PrintDone", "PrintFailed", "PrintCancelled")  # OctoPrint's


class Unreadable(Rejected):
    """A message that is not the route's model even with unknown fields ignored."""


def read(model: type[M], payload: bytes | str, limit: int = JSON_LIMIT) -> M:
    """Validate another process's message: unknown fields (at any depth) are ignored, types are strict."""
    raw = payload.encode() if isinstance(payload, str) else payload
    try:
        screen(raw, limit)
        return model.model_validate_json(raw, strict=True, extra="ignore")
    except Rejected as exc:
        raise Unreadable(f"{model.__name__}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise Unreadable(f"{model.__name__}: {where}: {first['msg']}") from None


def event_body(model: type[B], event: PrinterEvent) -> B:
    """The typed body of an event read as a ``PrinterEvent`` (``held``, ``released``), read leniently."""
    try:
        return model.model_validate(event.payload or {}, strict=True, extra="ignore")
    except ValidationError as exc:
        raise Unreadable(f"{model.__name__}: {exc.errors(include_url=False)[0]['msg']}") from None


def component(topics: Topics, name: str, node: str) -> ComponentTopics:
    """Another node's component, e.g. ``component(topics, PRINTER, "mk4")``."""
    return topics.component(name, node)


def wildcard(component: str = ANY, node: str = ANY) -> ComponentTopics:
    """A base for subscription filters only, never for publishing: ``wildcard(COORDINATOR)`` is
    ``+/coordinator`` (that component on every node), ``wildcard(node="mk4")`` is ``mk4/+``."""
    return ComponentTopics(
        node if node == ANY else check_segment(node, "node id"),
        component if component == ANY else check_segment(component),
    )


def _levels(template: tuple[str, ...], names: tuple[str, ...], fill: bool) -> list[str]:
    left = list(names)
    out = []
    for level in template:
        if level != ANY:
            out.append(level)
        elif left:
            out.append(check_segment(left.pop(0)))
        elif fill:
            raise ValueError(f"topic {'/'.join(template)} needs {template.count(ANY)} names, got {len(names)}")
        else:
            out.append(ANY)
    if left:
        raise ValueError(f"topic {'/'.join(template)} takes {template.count(ANY)} names, got {len(names)}")
    return out


@dataclass(frozen=True)
class RawRoute:
    """A topic whose payload is not JSON (a JPEG, a button press)."""

    levels: tuple[str, ...]
    retain: bool = False
    qos: int = 1
    limit: int = JSON_LIMIT  # bytes: a longer payload is refused unread

    def topic(self, base: ComponentTopics, *names: str) -> str:
        """The relative topic; every ``+`` level must be named."""
        return join(base.base, *_levels(self.levels, names, fill=True))

    def filter(self, base: ComponentTopics, *names: str) -> str:
        """A subscription filter: the levels not named stay ``+``."""
        return join(base.base, *_levels(self.levels, names, fill=False))

    def subscribe_raw(self, runtime: MqttRuntime, base: ComponentTopics, handler: Handler, *names: str) -> None:
        """Subscribe to the raw bytes; a payload over ``limit`` is refused before ``handler`` sees it."""

        def on_message(message: Message) -> None:
            if len(message.payload) > self.limit:
                raise Unreadable(f"payload of {len(message.payload)} bytes is over the {self.limit}-byte limit")
            handler(message)

        runtime.subscribe_relative(self.filter(base, *names), on_message, qos=self.qos)


@dataclass(frozen=True, kw_only=True)
class Route(RawRoute, Generic[M]):
    """A JSON topic and its payload model."""

    model: type[M]

    def read(self, payload: bytes | str) -> M:
        return read(self.model, payload, self.limit)

    def publish(self, runtime: MqttRuntime, base: ComponentTopics, payload: M, *names: str) -> None:
        runtime.publish(self.topic(base, *names), payload, qos=self.qos, retain=self.retain)

    def reader(self, handler: Callable[[M, Message], None]) -> Handler:
        """Parses first: empty messages are skipped, unreadable ones raise ``Unreadable`` (the runtime counts them)."""

        def on_message(message: Message) -> None:
            if not message.payload:
                return  # a retained message being cleared
            handler(read(self.model, message.payload, self.limit), message)

        return on_message

    def subscribe(
        self, runtime: MqttRuntime, base: ComponentTopics, handler: Callable[[M, Message], None], *names: str
    ) -> None:
        runtime.subscribe_relative(self.filter(base, *names), self.reader(handler), qos=self.qos)


@dataclass(frozen=True)
class CommandRoute(Generic[R]):
    """``<node>/<component>/cmd/<name>`` and its answer on ``res/<name>`` (or a response topic)."""

    name: str
    request: type[R]

    def cmd(self, base: ComponentTopics) -> str:
        return base.cmd(self.name)

    def res(self, base: ComponentTopics) -> str:
        return base.res(self.name)


def _route(model: type[M], *levels: str, retain: bool = True, qos: int = 1, limit: int = JSON_LIMIT) -> Route[M]:
    return Route(levels=levels, retain=retain, qos=qos, limit=limit, model=model)


# ------------------------------------------------------------------ every component
STATUS = _route(Status, "status")  # retained; the last will says offline

# ------------------------------------------------------------------ printer (the OctoPrint bridge)
PRINTER_CONNECTION = _route(PrinterConnection, "connection")
PRINTER_STATE = _route(PrinterState, "state")
PRINTER_PROFILE = _route(PrinterProfile, "profile")
PRINTER_TEMPERATURE = _route(PrinterTemperatures, "temperature")
PRINTER_FANS = _route(PrinterFans, "fans")
PRINTER_HEATING = _route(PrinterHeatingEta, "heating")
PRINTER_JOB = _route(PrinterJob, "job")
PRINTER_LAYER_PROGRESS = _route(LayerProgress, "layer_progress")
PRINTER_LAYERS = _route(LayerTable, "layers", limit=LAYERS_LIMIT)
PRINTER_OUTLINES = _route(LayerOutlines, "outlines", limit=LAYERS_LIMIT)  # for the coordinator's print watch
PRINTER_LAYER = _route(LayerEvent, "layer", retain=False)
PRINTER_EVENT = _route(PrinterEvent, "event", retain=False)
PRINTER_HELD = _route(PrinterHeld, HELD, retain=False)  # shared by coordinators; also on event
PRINTER_HOLD = _route(PrinterHold, "hold")
HOLD = CommandRoute("hold", HoldRequest)
RELEASE = CommandRoute("release", ReleaseRequest)
MOVE = CommandRoute("move", MoveRequest)
PAUSE = CommandRoute("pause", PauseRequest)
RESUME = CommandRoute("resume", ResumeRequest)
CANCEL = CommandRoute("cancel", CancelRequest)
GCODE = CommandRoute("gcode", GcodeRequest)

# ------------------------------------------------------------------ camera agent (<cam> = <node>/camera/<camera>)
CAMERA_AVAILABILITY = _route(Availability, ANY, "availability")
CAMERA_LAST_CAPTURE = _route(CaptureResult, ANY, "last_capture")
CAMERA_PREVIEW = RawRoute((ANY, "preview"), retain=True, qos=0, limit=IMAGE_LIMIT)  # JPEG
CAMERA_IMAGE = RawRoute((ANY, "capture", ANY), limit=IMAGE_LIMIT)  # JPEG; the last level is the capture id
CAMERA_PRESS = RawRoute((ANY, "press"), limit=PRESS_LIMIT)  # any short payload
CAPTURE = CommandRoute("capture", CaptureRequest)
CAMERAS = CommandRoute("cameras", CamerasRequest)
CAMERA_RETAINED = (CAMERA_AVAILABILITY, CAMERA_LAST_CAPTURE, CAMERA_PREVIEW)  # cleared for a removed camera

# ------------------------------------------------------------------ host agent
HOST_STATE = _route(HostState, "state")
HOST_COMMAND = _route(ShellResult, "command", ANY)
REFRESH = CommandRoute("refresh", RefreshRequest)

# ------------------------------------------------------------------ sensor agent (per sensor)
SENSOR_STATE = _route(SensorReading, ANY, "state")
SENSOR_HEALTH = _route(SensorHealth, ANY, "health")
SENSOR_AVAILABILITY = _route(Availability, ANY, "availability")
SENSOR_RETAINED = (SENSOR_STATE, SENSOR_HEALTH, SENSOR_AVAILABILITY)  # cleared for a removed sensor
READ = CommandRoute("read", ReadRequest)

# ------------------------------------------------------------------ coordinator (per printer)
COORDINATOR_STATE = _route(CoordinatorState, ANY, "state")
COORDINATOR_CAPTURE = _route(LayerCapture, ANY, "capture")
COORDINATOR_SUMMARY = _route(JobSummary, ANY, "summary")
COORDINATOR_WATCH = _route(WatchVerdict, ANY, "watch")  # print watch: the verdict on each captured layer
COORDINATOR_FLEET = _route(CoordinatorFleet, "fleet")  # its group, and the printers it serves and owns
ABORT = CommandRoute("abort", AbortRequest)
COORDINATOR_STATUS_FILTER = STATUS.filter(wildcard(COORDINATOR))  # every coordinator's presence

# ------------------------------------------------------------------ outside every component
ALL_BELOW = "#"  # a subscription or ACL filter: every level below
REPLY = topics_reply  # <root>/reply/<requester>/...: answers to MQTT 5 requests (topics.reply_topic)
PREFLIGHT = "_preflight"  # <root>/_preflight/<uuid>: `printmesh up` checks the broker carries a capture


def read_presence(payload: bytes) -> Availability | None:
    """A status or availability message, as online/offline and a reason; None if it is neither.

    One parser for both (a Status is an Availability plus fields a reader may ignore); a bare
    ``online``/``offline`` text, as some tools publish by hand, too."""
    text = payload.strip() if isinstance(payload, bytes) else b""
    if text in (b"online", b"offline"):
        return Availability(state="online" if text == b"online" else "offline")
    try:
        return read(Availability, payload)
    except Unreadable:
        return None


def presence_reader(handler: Callable[[Availability, Message], None]) -> Handler:
    """A handler for status and availability topics; an empty message is skipped, junk refused."""

    def on_message(message: Message) -> None:
        if not message.payload:
            return
        presence = read_presence(message.payload)
        if presence is None:
            raise Unreadable(f"not a status or availability: {message.payload[:60]!r}")
        handler(presence, message)

    return on_message


def subscribe_presence(
    runtime: MqttRuntime, route: Route[Any], base: ComponentTopics, handler: Callable[[Availability, Message], None],
    *names: str,
) -> None:  # fmt: skip
    """Follow a status (``STATUS``) or an availability route through ``read_presence``."""
    runtime.subscribe_relative(route.filter(base, *names), presence_reader(handler), qos=route.qos)
