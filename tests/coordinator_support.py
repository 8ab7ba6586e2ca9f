"""Helpers for the coordinator tests: a driven state machine, and a fake bridge on a real broker.

``Sim`` feeds the pure machine and keeps every command it emitted, with helpers that
answer the pending request the way the bridge or a camera agent would. ``FakeBridge``
speaks the bridge's message contract (retained status, profile, job, state and hold
status; ``held``/``released`` events; ``hold``/``move``/``release`` commands with MQTT 5
response topics) on the real broker, driven by the test: it is the contract test of the
coordinator's side, not a stand-in for the OctoPrint end-to-end test.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from printmesh_coordinator.config import PrinterConfig
from printmesh_coordinator.machine import decide
from printmesh_coordinator.messages import (
    XYZ,
    Answer,
    BridgePresence,
    Command,
    Held,
    HoldStatusSeen,
    ImageArrived,
    Input,
    ProfileSeen,
    SendCapture,
    SendHold,
    SendMove,
    SendRelease,
    Tick,
    WriteImage,
    WriteMetadata,
    Written,
)
from printmesh_coordinator.state import MachineState, Setup, initial
from printmesh_core.commands import Command as Served
from printmesh_core.commands import CommandServer, error
from printmesh_core.config import MqttConfig
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.models.printer import (
    BuildVolume,
    HoldPlan,
    HoldRequest,
    MoveRequest,
    PrinterEvent,
    PrinterHold,
    PrinterJob,
    PrinterProfile,
    PrinterState,
    ReleaseRequest,
    StateFlags,
)
from printmesh_core.mqtt import MqttRuntime, Presence
from printmesh_core.topics import Topics

PROFILE = PrinterProfile(name="test", volume=BuildVolume(width=200, depth=200, height=200))
COORD = "coord"
HOLDER = f"{COORD}/coordinator"


def printer_config(**over: Any) -> PrinterConfig:
    base: dict[str, Any] = {
        "node": "octo",
        "plan": {"every": 5},
        "grid": {"size": 3, "spacing": 20, "center": {"x": 100, "y": 100}},
        "cameras": [{"node": "cam", "camera": "bed"}],
        "settle": 0.5,
    }
    base.update(over)
    return PrinterConfig.model_validate(base)


def jpeg_like(label: str) -> bytes:
    return b"\xff\xd8" + label.encode() + b"\xff\xd9"


def held(hold_id: int = 1, layer: int = 10, z: float = 2.0, ts: float = 500.0, **over: Any) -> Held:
    values: dict[str, Any] = {
        "hold_id": hold_id, "layer": layer, "z": z, "origin": XYZ(50.0, 60.0, 2.0),
        "path": "folder/cube.gcode", "started_at": 400.0, "ts": ts,
    }  # fmt: skip
    values.update(over)
    return Held(**values)


def hold_status(phase: str = "idle", ts: float = 0.0, **over: Any) -> HoldStatusSeen:
    values: dict[str, Any] = {"phase": phase, "ts": ts, "holder": HOLDER, "armed": HoldPlan(every=5)}
    values.update(over)
    return HoldStatusSeen(PrinterHold(**values))


class Sim:
    """The pure machine, a clock the test moves, and everything it said."""

    def __init__(self, config: PrinterConfig | None = None, now: float = 1000.0) -> None:
        self.state: MachineState = initial(Setup(config or printer_config(), COORD, "s1"))
        self.now = now
        self.out: list[Command] = []

    def feed(self, message: Input, dt: float = 0.0) -> list[Command]:
        self.now += dt
        self.state, cmds = decide(self.state, message, self.now)
        self.out += cmds
        return cmds

    def ready(self) -> Sim:
        """Bridge online, profile known, our plan armed: the machine waits for holds."""
        self.feed(BridgePresence(True))
        self.feed(ProfileSeen(PROFILE))
        if self.of(SendHold):
            self.ok(self.last(SendHold), {"armed": {"every": 5}})
        self.feed(hold_status())
        return self

    def of(self, kind: type[Any]) -> list[Any]:
        return [c for c in self.out if isinstance(c, kind)]

    def last(self, kind: type[Any]) -> Any:
        found = self.of(kind)
        assert found, f"no {kind.__name__} among {self.out}"
        return found[-1]

    def ok(self, cmd: Any, data: dict[str, Any] | None = None, dt: float = 0.0) -> list[Command]:
        return self.feed(Answer(cmd.request_id, True, data or {}), dt)

    def refuse(self, cmd: Any, code: str = "out_of_range", dt: float = 0.0) -> list[Command]:
        return self.feed(Answer(cmd.request_id, False, None, code, f"{code} says the bridge"), dt)

    def capture_messages(self, cmd: SendCapture, corrupt: bool = False) -> tuple[Answer, ImageArrived]:
        """What a camera agent sends for this request: the answer, and the JPEG on its own topic."""
        data = jpeg_like(cmd.label)
        sha = hashlib.sha256(data).hexdigest()
        result = {"capture_id": cmd.request_id, "request_id": cmd.request_id, "camera": cmd.camera,
                  "topic": f"printmesh/{cmd.node}/camera/{cmd.camera}/capture/{cmd.request_id}",
                  "timestamp": self.now, "width": 64, "height": 48, "size": len(data), "sha256": sha,
                  "quality": 85, "label": cmd.label, "source": "synthetic"}  # fmt: skip
        image = ImageArrived(cmd.request_id, data + (b"x" if corrupt else b""), sha)
        return Answer(cmd.request_id, True, result), image

    def capture(self, cmd: SendCapture, image_first: bool = False, corrupt: bool = False) -> list[Command]:
        answer, image = self.capture_messages(cmd, corrupt)
        if image_first:
            return self.feed(image) + self.feed(answer)
        return self.feed(answer) + self.feed(image)

    def written_message(self, cmd: WriteImage | WriteMetadata) -> Written:
        return Written(cmd.path)

    def written(self, cmd: WriteImage | WriteMetadata) -> list[Command]:
        return self.feed(Written(cmd.path))

    def pending_command(self) -> Any:
        """The command whose answer (or file) the run waits for."""
        run = self.state.run
        assert run is not None and run.pending is not None, "nothing pending"
        key = run.pending.key
        return next(c for c in reversed(self.out) if key in (getattr(c, "request_id", None), getattr(c, "path", None)))

    def run_grid(self) -> None:
        """Answer moves, let the settle pass, capture and store, until the return or release is pending."""
        while self.state.run is not None:
            run = self.state.run
            if run.phase == "settling":
                self.feed(Tick(), dt=self.state.setup.printer.settle)
                continue
            if run.pending is None or run.phase in ("returning", "releasing", "finishing"):
                return
            cmd = self.pending_command()
            if isinstance(cmd, SendMove):
                self.ok(cmd, {"position": {"x": cmd.x, "y": cmd.y, "z": cmd.z}}, dt=0.2)
            elif isinstance(cmd, SendCapture):
                self.now += 0.1
                self.capture(cmd)
            elif isinstance(cmd, WriteImage):
                self.written(cmd)
            else:
                return

    def finish(self) -> None:
        """Answer the return move and the release, and confirm the metadata file."""
        while self.state.run is not None:
            cmd = self.pending_command()
            if isinstance(cmd, SendMove):
                self.ok(cmd, {"position": {"x": cmd.x, "y": cmd.y, "z": 9.0}}, dt=0.2)
            elif isinstance(cmd, SendRelease):
                self.ok(cmd, {"reason": "requested", "returned": True}, dt=0.3)
            elif isinstance(cmd, WriteMetadata):
                self.written(cmd)
            else:
                raise AssertionError(f"unexpected pending {cmd}")


# ------------------------------------------------------------------ the bridge's message contract
@dataclass
class Hold:
    hold_id: int
    layer: int
    z: float
    moves: list[tuple[MoveRequest, str | None]] = field(default_factory=list)  # request, who (response topic)
    releases: list[str | None] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)


class FakeBridge:
    """A printer's bridge as the coordinator sees it over MQTT, driven step by step by a test.

    It keeps the retained topics a real bridge keeps, answers ``hold``/``move``/``release``
    through the core's command server (so MQTT 5 response topics are honoured), and only
    holds when the test says a layer started and a plan is armed.
    """

    def __init__(self, broker: Any, node: str, profile: PrinterProfile = PROFILE, move_time: float = 0.02) -> None:
        self.node = node
        self.profile = profile
        self.move_time = move_time
        self.topics = Topics("printmesh", node)
        self.me = self.topics.component("printer")
        cfg = MqttConfig(host=broker.host, port=broker.port)
        self.runtime = MqttRuntime(cfg, "printmesh", f"fake-bridge-{node}", Presence(self.me.status, "printer", "t"))
        commands = [Served("hold", HoldRequest, self._hold, deferred=True),
                    Served("move", MoveRequest, self._move, deferred=True),
                    Served("release", ReleaseRequest, self._release, deferred=True)]  # fmt: skip
        self.server = CommandServer(self.runtime, self.topics, self.me, commands, workers=4)
        self.lock = threading.Condition()
        self.armed: HoldPlan | None = None
        self.holder: str | None = None
        self.arm_requests: list[HoldRequest] = []
        self.holds: dict[int, Hold] = {}
        self.current: Hold | None = None
        self.refuse_moves: str | None = None  # an error code for every move while set
        self.file = "cube.gcode"
        self.started_at: float | None = None
        self.rng = random.Random(node)

    def start(self) -> FakeBridge:
        self.server.attach()
        self.runtime.start()
        assert self.runtime.wait_connected(5)
        self.runtime.publish(self.me.sub("profile"), self.profile, qos=1, retain=True)
        self._state(printing=False)
        self._status()
        return self

    def stop(self) -> None:
        self.server.close()
        self.runtime.stop()

    # ------------------------------------------------------------ driving
    def wait_armed(self, holder: str | None = None, timeout: float = 15) -> HoldPlan:
        with self.lock:
            ok = self.lock.wait_for(lambda: self.armed is not None and holder in (None, self.holder), timeout)
            assert ok, f"{self.node}: never armed (holder {self.holder})"
            assert self.armed is not None
            return self.armed

    def start_print(self, file: str = "cube.gcode") -> None:
        self.file, self.started_at = file, round(time.time(), 3)
        job = PrinterJob(file_name=file, file_path=file, started_at=self.started_at)
        self.runtime.publish(self.me.sub("job"), job, qos=1, retain=True)
        self._state(printing=True)
        self._event("PrintStarted", {"name": file, "path": file}, "octoprint")

    def hold_at(self, layer: int, z: float) -> Hold:
        """Layer ``layer`` starts and the armed plan matches: hold, and announce it like the bridge.

        OctoPrint's own events (``ZChange``...) come first, a varying number of them as in a
        real print, so a shared subscription's round robin does not always hand this
        printer's ``held`` events to the same coordinator.
        """
        for _ in range(self.rng.randint(0, 3)):
            self._event("ZChange", {"new": z, "old": round(z - 0.2, 3)}, "octoprint")
        with self.lock:
            assert self.armed is not None, "holding without an armed plan"
            assert self.current is None, "one hold at a time"
            hold = Hold(len(self.holds) + 1, layer, z)
            self.holds[hold.hold_id] = hold
            self.current = hold
            self._status()
        origin = {"x": 50.0, "y": 60.0, "z": round(z - 0.2, 3)}
        self._event("held", {"hold_id": hold.hold_id, "layer": layer, "origin": origin, "z": z, "path": self.file,
                             "started_at": self.started_at}, "printmesh")  # fmt: skip
        return hold

    def end_print(self, event: str = "PrintDone") -> None:
        with self.lock:
            self.armed = None  # the bridge drops the plan when a print ends
            self._status()
        self._state(printing=False)
        self._event(event, {"name": self.file, "path": self.file}, "octoprint")

    # ------------------------------------------------------------ commands
    def _hold(self, request: Any, message: Any, reply: Any) -> None:
        with self.lock:
            self.arm_requests.append(request)
            self.armed, self.holder = request.plan, request.holder
            self._status()
            self.lock.notify_all()
        self._event("hold_armed", {"plan": request.plan.model_dump(), "holder": request.holder}, "printmesh")
        reply(CommandResponse(id=request.id, ok=True, data={"armed": request.plan.model_dump()}))

    def _move(self, request: Any, message: Any, reply: Any) -> None:
        def run() -> None:
            with self.lock:
                hold = self.current
                if hold is not None:
                    hold.moves.append((request, message.response_topic))
                refusal = "not_held" if hold is None else self.refuse_moves
            if refusal is not None:
                reply(error(request.id, refusal, f"{refusal} (fake bridge)"))
                return
            time.sleep(self.move_time)
            assert hold is not None
            pos = {"x": request.x, "y": request.y, "z": request.z if request.z is not None else hold.z + 2}
            reply(CommandResponse(id=request.id, ok=True, data={"hold_id": hold.hold_id, "layer": hold.layer,
                                                                "position": pos}))  # fmt: skip

        threading.Thread(target=run, daemon=True).start()

    def _release(self, request: Any, message: Any, reply: Any) -> None:
        with self.lock:
            hold, self.current = self.current, None
            if hold is not None:
                hold.releases.append(message.response_topic)
            self._status()
        if hold is None:
            reply(CommandResponse(id=request.id, ok=True, data={"held": False}))
            return
        data = {"hold_id": hold.hold_id, "layer": hold.layer, "reason": "requested", "returned": True, "error": None}
        self._event("released", data, "printmesh")
        reply(CommandResponse(id=request.id, ok=True, data=data))
        hold.released.set()

    # ------------------------------------------------------------ retained topics
    def _status(self) -> None:
        hold = self.current
        status = PrinterHold(phase="held" if hold else "idle", hold_id=hold.hold_id if hold else None,
                             layer=hold.layer if hold else None, holder=self.holder, armed=self.armed)  # fmt: skip
        self.runtime.publish(self.me.sub("hold"), status, qos=1, retain=True)

    def _state(self, printing: bool) -> None:
        state = PrinterState(text="Printing" if printing else "Operational",
                             flags=StateFlags(operational=True, printing=printing, ready=not printing))  # fmt: skip
        self.runtime.publish(self.me.state, state, qos=1, retain=True)

    def _event(self, name: str, payload: dict[str, Any], source: str) -> None:
        event = PrinterEvent(event=name, payload=payload, source=source)  # type: ignore[arg-type]
        self.runtime.publish(self.me.event, event, qos=1)
        if name == "held":  # as the bridge does: alone on printer/held too, for shared subscriptions
            self.runtime.publish(self.me.sub("held"), event, qos=1)


def camera_config(node: str = "cam", cameras: tuple[str, ...] = ("bed",)) -> dict[str, Any]:
    cams = [{"name": c, "source": {"type": "synthetic", "fps": 20}, "width": 320, "height": 240,
             "preview": {"interval": 0}} for c in cameras]  # fmt: skip
    return {"node_id": node, "camera": {"cameras": cams}}


def coordinator_config(node: str, captures: Any, printers: list[dict[str, Any]], **section: Any) -> dict[str, Any]:
    return {"node_id": node, "coordinator": {"captures_dir": str(captures), "printers": printers, **section}}


def printer_entry(node: str, **over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"node": node, "plan": {"every": 5}, "grid": {"size": 3, "spacing": 20},
                             "cameras": [{"node": "cam", "camera": "bed"}], "settle": 0.02}  # fmt: skip
    entry.update(over)
    return entry


def read_json(path: Any) -> Any:
    return json.loads(path.read_text())
