"""Readers tolerate newer writers: every subscriber, on a real broker, gets each model it reads
with a field it has never heard of (at the top and inside a nested object), and still handles it.

A farm is upgraded one machine at a time. One table: a row per (reader, topic, model). A new
reader is a ``READERS`` entry and its rows. The OctoPrint bridge runs in a real OctoPrint
(``octoprint_harness``): it reads its holder's status (an offline one must still release the
hold) and its seven commands.

Command requests are answered, never dropped: an unknown field in an instruction is refused
with an error naming it (an older reader cannot do what the field asks; requesters leave
defaults out, so a field is only sent when it matters), and the reader keeps serving.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from conftest import Observer
from coordinator_support import camera_config, coordinator_config, printer_entry
from pydantic import BaseModel
from tolerance_bridge import held_for, released, run_bridge

from printmesh_coordinator.agent import CoordinatorAgent
from printmesh_coordinator.config import CoordinatorSettings
from printmesh_coordinator.messages import (
    ActivitySeen,
    Answer,
    BridgePresence,
    CameraPresence,
    CoordinatorPresence,
    Held,
    HoldReleased,
    HoldStatusSeen,
    Input,
    JobSeen,
    PrintEnded,
    ProfileSeen,
)
from printmesh_core import contract
from printmesh_core.models.camera import CaptureRequest
from printmesh_core.models.coordinator import CoordinatorFleet
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.models.host import RefreshRequest
from printmesh_core.models.printer import (
    BuildVolume,
    CancelRequest,
    GcodeRequest,
    HoldRequest,
    HoldStarted,
    MoveRequest,
    PauseRequest,
    Point,
    PrinterEvent,
    PrinterHeld,
    PrinterHold,
    PrinterJob,
    PrinterProfile,
    PrinterState,
    ReleaseRequest,
    ResumeRequest,
    StateFlags,
)
from printmesh_core.models.sensors import ReadRequest
from printmesh_core.models.status import Availability, Status
from printmesh_core.topics import Topics, reply_topic, requester_id
from printmesh_devkit.broker import LocalBroker

UNKNOWN = "added_by_a_newer_version"
T = Topics("printmesh", "co")
PRINTER = T.component(contract.PRINTER, "p1")
CAMERA = T.component(contract.CAMERA, "cam")
HOST = T.component(contract.HOST, "h1")
SENSORS = T.component(contract.SENSORS, "s1")
ME = T.component(contract.COORDINATOR, "co")
HOLDER = T.component(contract.COORDINATOR, "h9")  # the bridge's holder: "h9/coordinator"


@dataclass
class Seen:
    """What one reader did: the coordinator's machine inputs, or the broker's traffic for a process."""

    observer: Observer
    inputs: list[Input] = field(default_factory=list)
    before: Callable[[Any], None] | None = None
    agent: Any = None  # the reader in this process, when it is one


@dataclass(frozen=True)
class Row:
    reader: str  # a key of READERS
    topic: str  # relative to the root
    message: BaseModel | dict[str, Any]  # valid, as its writer builds it
    handled: Callable[[Seen, int], bool]  # (what the reader did, observer mark) -> handled?
    nested: tuple[tuple[str, ...], ...] = ()  # nested objects that get the unknown field too
    setup: Callable[[Any], None] | None = None  # e.g. a request in flight before its answer


def delivered(kind: type, where: Callable[[Any], bool] = lambda i: True) -> Callable[[Seen, int], bool]:
    return lambda seen, mark: any(isinstance(i, kind) and where(i) for i in list(seen.inputs))


def in_group(member: str, group: str) -> Callable[[Seen, int], bool]:
    """The coordinator's ownership took the member's fleet message in (``sharing: owners``)."""
    return lambda seen, mark: getattr(seen.agent.fleet.state.members.get(member), "group", None) == group


def answered(base: Any, command: str, rid: str) -> Callable[[Seen, int], bool]:
    """An answer with the request's id; a refusal must name the unknown field."""

    def check(seen: Seen, mark: int) -> bool:
        for m in seen.observer.messages[mark:]:
            if m.topic == T.absolute(base.res(command)):
                r = CommandResponse.model_validate_json(m.payload)
                if r.id == rid and (r.ok or (r.error is not None and UNKNOWN in r.error.message)):
                    return True
        return False

    return check


def image_published(seen: Seen, mark: int) -> bool:
    prefix = T.absolute(contract.CAMERA_IMAGE.filter(CAMERA, "bed"))[:-1]
    return any(m.topic.startswith(prefix) for m in seen.observer.messages[mark:])


def in_flight(agent: CoordinatorAgent) -> None:
    agent.link.requests.send(CAMERA, contract.CAPTURE.name, CaptureRequest(id="a1", camera="bed"), "p1")


def names_holder(holder: str) -> Callable[[CoordinatorAgent], None]:
    """The bridge's hold status names ``holder`` (as if it had arrived): the coordinator follows its status."""

    def setup(agent: CoordinatorAgent) -> None:
        agent.link.hold_status("p1", PrinterHold(phase="idle", holder=holder))
        time.sleep(0.5)  # the new subscription reaches the broker

    return setup


def status(component: str, state: Literal["online", "offline"] = "online") -> Status:
    return Status(state=state, component=component, version="9.9")


PROFILE = PrinterProfile(name="mk4", volume=BuildVolume(width=250, depth=210, height=220))
HELD = PrinterHeld(payload=HoldStarted(hold_id=1, layer=5, origin=Point(x=1, y=2, z=1.0), z=1.2, path="a.gcode"))
RELEASED = {"hold_id": 1, "layer": 5, "reason": "released", "returned": True, "error": None}

TABLE = [
    Row("coordinator", contract.STATUS.topic(PRINTER), status("printer"), delivered(BridgePresence)),
    Row("coordinator", contract.PRINTER_PROFILE.topic(PRINTER), PROFILE, delivered(ProfileSeen), (("volume",),)),
    Row("coordinator", contract.PRINTER_HOLD.topic(PRINTER), PrinterHold(phase="idle"), delivered(HoldStatusSeen)),
    Row("coordinator", contract.PRINTER_JOB.topic(PRINTER), PrinterJob(file_name="a.gcode"), delivered(JobSeen)),
    Row(
        "coordinator",
        contract.PRINTER_STATE.topic(PRINTER),
        PrinterState(text="Printing", flags=StateFlags(printing=True)),
        delivered(ActivitySeen),
        (("flags",),),
    ),
    Row(
        "coordinator",
        contract.PRINTER_HELD.topic(PRINTER),
        HELD,
        delivered(Held, lambda h: h.hold_id == 1),
        (("payload",), ("payload", "origin")),
    ),
    Row(
        "coordinator",
        contract.PRINTER_EVENT.topic(PRINTER),
        PrinterEvent(event=contract.RELEASED, source="printmesh", payload=RELEASED),
        delivered(HoldReleased),
        (("payload",),),
    ),
    Row(
        "coordinator",
        contract.PRINTER_EVENT.topic(PRINTER),
        PrinterEvent(event="PrintDone", payload={}),
        delivered(PrintEnded),
    ),
    Row(
        "coordinator",
        contract.STATUS.topic(CAMERA),
        status("camera"),
        delivered(CameraPresence, lambda p: p.camera is None),
    ),
    Row(
        "coordinator",
        contract.CAMERA_AVAILABILITY.topic(CAMERA, "bed"),
        Availability(state="online"),
        delivered(CameraPresence, lambda p: p.camera == "bed"),
    ),
    Row(
        "coordinator",
        contract.STATUS.topic(T.component(contract.COORDINATOR, "other")),
        status("coordinator"),
        delivered(CoordinatorPresence, lambda p: p.holder == "other/coordinator"),
        setup=names_holder("other/coordinator"),  # only the holder of our printer's plan is handed on
    ),
    Row(
        "coordinator",
        reply_topic(requester_id(None, ME.node_id, ME.component), PRINTER),
        CommandResponse(id="a1", ok=True, data={}),
        delivered(Answer, lambda a: a.request_id == "a1"),
        setup=in_flight,
    ),
    Row(
        "coordinator_owners",
        contract.COORDINATOR_FLEET.topic(T.component(contract.COORDINATOR, "f9")),
        CoordinatorFleet(group="g", sharing="owners", serves=["p1"], owns=[]),
        in_group("f9/coordinator", "g"),
    ),
    Row(
        "camera",
        contract.CAPTURE.cmd(CAMERA),
        CaptureRequest(id="c1", camera="bed"),
        answered(CAMERA, contract.CAPTURE.name, "c1"),
    ),
    Row("camera", contract.CAMERA_PRESS.topic(CAMERA, "bed"), {"label": "x"}, image_published),
    Row("host", contract.REFRESH.cmd(HOST), RefreshRequest(id="r1"), answered(HOST, contract.REFRESH.name, "r1")),
    *(  # commands are strict by design: each is answered, naming the unknown field
        Row("bridge", route.cmd(PRINTER), request, answered(PRINTER, route.name, request.id))
        for route, request in (
            (contract.HOLD, HoldRequest(id="b1", layer=3)),
            (contract.RELEASE, ReleaseRequest(id="b2")),
            (contract.MOVE, MoveRequest(id="b3", x=10)),
            (contract.GCODE, GcodeRequest(id="b4", lines=["M117 hi"])),
            (contract.PAUSE, PauseRequest(id="b5")),
            (contract.RESUME, ResumeRequest(id="b6")),
            (contract.CANCEL, CancelRequest(id="b7")),
        )
    ),
    Row(
        "bridge",
        contract.STATUS.topic(HOLDER),
        status("coordinator", "offline"),
        released(T.absolute(contract.PRINTER_EVENT.topic(PRINTER)), "holder_offline"),
        setup=held_for(HOLDER),
    ),
    Row(
        "sensors",
        contract.READ.cmd(SENSORS),
        ReadRequest(id="s1", sensor="sim"),
        answered(SENSORS, contract.READ.name, "s1"),
    ),
]


def with_unknown(row: Row) -> dict[str, Any]:
    doc = row.message.model_dump(mode="json") if isinstance(row.message, BaseModel) else dict(row.message)
    for path in ((), *row.nested):
        part = doc
        for key in path:
            part = part[key]
        part[UNKNOWN] = {"anything": [1, "two"]}
    return doc


# ------------------------------------------------------------------ readers
def coordinator(broker: LocalBroker, tmp_path: Path, run_agent: Any, seen: Seen, **section: Any) -> Iterator[Any]:
    section = section or {"sharing": "subscription"}  # the shared 'held' topic is read too
    cfg = coordinator_config("co", tmp_path / "captures", [printer_entry("p1")], share_group="g", **section)
    cfg["mqtt"] = {"host": broker.host, "port": broker.port}
    agent = seen.agent = CoordinatorAgent(CoordinatorSettings.model_validate(cfg))
    agent.link.deliver = lambda printer, message: seen.inputs.append(message)
    agent.attach()
    agent.runtime.start()
    assert agent.runtime.wait_connected(5)
    time.sleep(0.3)  # the subscriptions, restored in the connect callback, reach the broker
    yield agent
    agent.runtime.stop()


def coordinator_owners(broker: LocalBroker, tmp_path: Path, run_agent: Any, seen: Seen) -> Iterator[Any]:
    yield from coordinator(broker, tmp_path, run_agent, seen, sharing="owners")


def process(component: str, config: dict[str, Any], ready: str) -> Callable[..., Iterator[Any]]:
    def start(broker: LocalBroker, tmp_path: Path, run_agent: Any, seen: Seen) -> Iterator[Any]:
        agent = run_agent(component, config)
        seen.observer.topic(ready, where=lambda d: d.get("state") == "online", timeout=20)
        yield agent
        assert agent.proc.poll() is None and "Traceback" not in agent.log()

    return start


def bridge(broker: LocalBroker, tmp_path: Path, run_agent: Any, seen: Seen) -> Iterator[Any]:
    yield from run_bridge(broker, tmp_path, seen.observer, T, PRINTER)


SENSOR = {"name": "sim", "driver": "simulated", "interval": 0.5}
READERS: dict[str, Callable[..., Iterator[Any]]] = {
    "bridge": bridge,
    "coordinator": coordinator,
    "coordinator_owners": coordinator_owners,
    "camera": process("camera", camera_config(), "printmesh/cam/camera/bed/availability"),
    "host": process("host", {"node_id": "h1", "host": {"interval": 1.0}}, "printmesh/h1/host/status"),
    "sensors": process("sensors", {"node_id": "s1", "sensors": {"sensors": [SENSOR]}}, "printmesh/s1/sensors/status"),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_handles_messages_with_unknown_fields(reader, broker, observer, run_agent, tmp_path):
    rows = [r for r in TABLE if r.reader == reader]
    assert rows, f"no rows for {reader}"
    seen = Seen(observer)
    started = READERS[reader](broker, tmp_path, run_agent, seen)
    handle = next(started)
    dropped = []
    for row in rows:
        if row.setup is not None:
            row.setup(handle)
        seen.inputs.clear()
        mark = observer.mark()
        observer.publish(T.absolute(row.topic), json.dumps(with_unknown(row)))
        end = time.monotonic() + 10
        while not row.handled(seen, mark) and time.monotonic() < end:
            time.sleep(0.05)
        if not row.handled(seen, mark):
            dropped.append(f"{row.topic} ({type(row.message).__name__})")
    next(started, None)
    assert not dropped, f"{reader} dropped messages with an unknown field: {dropped}"
