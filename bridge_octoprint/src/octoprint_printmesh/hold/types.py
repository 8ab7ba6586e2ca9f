"""State, inputs, actions and settings of the hold state machine (see ``machine.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from octoprint_printmesh.gcode import Modes
from octoprint_printmesh.hold.safety import Origin, Pos, SafetySettings
from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import HoldPhase, HoldPlan, HoldRequest, PrinterProfile

_SESSION = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class HoldConfig:
    session: str = "s"  # token prefix, new each plugin start, so an echo from an earlier run never matches
    confirm_timeout: float = 30.0  # s for M400 (buffer drained) + the echo after a hold starts
    max_hold: float = 300.0  # s from the hold request until the release starts, whatever happens
    move_timeout: float = 60.0  # s for one move or gcode batch to be confirmed
    return_timeout: float = 60.0  # s for the return; then the job is released regardless
    safety: SafetySettings = field(default_factory=SafetySettings)

    def __post_init__(self) -> None:
        if not _SESSION.match(self.session):
            raise ValueError(f"session {self.session!r}: use 1-32 letters, digits, '_' or '-'")


@dataclass(frozen=True)
class Armed:
    """A hold plan: a layer matches if any rule matches. Layers count from 1."""

    layers: frozenset[int] = frozenset()
    every: int | None = None
    first: bool = False
    last: bool = False

    @staticmethod
    def from_model(plan: HoldPlan) -> Armed:
        return Armed(frozenset(plan.layers), plan.every, plan.first, plan.last)

    def to_model(self) -> HoldPlan:
        return HoldPlan(layers=sorted(self.layers), every=self.every, first=self.first, last=self.last)

    def matches(self, layer: int, total: int | None, first: bool) -> bool:
        return (
            layer in self.layers
            or (self.every is not None and layer % self.every == 0)
            or (self.first and first)
            or (self.last and total is not None and layer == total)
        )

    def exhausted(self, last_seen: int | None) -> bool:
        """Only explicit layers, all already passed: this plan can never hold again."""
        return (
            last_seen is not None
            and self.every is None
            and not self.first
            and not self.last
            and all(layer <= last_seen for layer in self.layers)
        )


@dataclass(frozen=True)
class Pending:
    """A move or gcode batch sent while held, waiting for its echo token."""

    cmd_id: str
    kind: Literal["move", "gcode"]
    token: str
    deadline: float
    end: Pos | None  # head position afterwards; None: unchanged


@dataclass(frozen=True)
class Missed:
    """A planned layer that passed unheld because the holder could not be reached (``outage.py``)."""

    layer: int
    z: float | None
    reason: str  # broker_unreachable, holder_unreachable
    at: float
    path: str | None
    started_at: float | None


@dataclass(frozen=True)
class Reach:
    """Can the holder reach us? Our broker connection and the holder's status since (``outage.py``)."""

    connected: bool = True  # our own connection to the broker
    seen: bool = True  # the holder's status said online since our last (re)connect, or it has not said offline
    deadline: float | None = None  # not seen: when the plan is disarmed (None while our connection is down)
    missed: tuple[Missed, ...] = ()  # told to the holder once it is seen again


@dataclass(frozen=True)
class HoldState:
    phase: HoldPhase = "idle"
    armed: Armed | None = None
    holder: str | None = None  # '<node>/<component>' whose status going offline releases
    printing: bool = False
    first_seen: bool = False  # a layer event has been seen in this print
    last_layer: int | None = None
    seq: int = 0  # token counter
    hold_id: int = 0
    layer: int | None = None
    layer_z: float | None = None
    since: float | None = None
    deadline: float | None = None  # draining: confirm deadline; returning: return deadline
    watchdog: float | None = None  # held/busy: when the release starts
    token: str | None = None  # awaited barrier or return token
    origin: Origin | None = None
    head: Pos | None = None  # None: still at the origin
    dirty: bool = False  # our lines may have changed modes: restore them before releasing
    profile: PrinterProfile | None = None  # the volume the moves were checked against; the return uses it
    pending: Pending | None = None
    hold_reply: str | None = None  # the hold command answered once held
    release_replies: tuple[str, ...] = ()
    release_reason: str | None = None
    job_path: str | None = None  # the printed file and when it started, for the 'held' event
    job_started: float | None = None
    reach: Reach = Reach()


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class HoldCommand:
    cmd_id: str
    now: bool = False
    plan: Armed | None = None
    holder: str | None = None

    @staticmethod
    def from_request(request: HoldRequest) -> HoldCommand:
        plan = None
        if request.plan is not None:
            plan = Armed.from_model(request.plan)
        elif request.layer is not None:
            plan = Armed(frozenset({request.layer}))
        return HoldCommand(request.id, request.now, plan, request.holder)


@dataclass(frozen=True)
class LayerReached:
    """A layer starts (``LayerEvent``): ``z`` is the layer's Z, the floor for any move."""

    layer: int
    total: int | None = None
    z: float | None = None

    @staticmethod
    def from_event(event: LayerEvent) -> LayerReached:
        return LayerReached(event.layer, event.total_layers, event.z)


@dataclass(frozen=True)
class OriginReported:
    """The M114 reply (or PositionUpdate) after the hold's M400, with the modes tracked then."""

    x: float
    y: float
    z: float
    modes: Modes = field(default_factory=Modes)


@dataclass(frozen=True)
class TokenSeen:
    token: str


@dataclass(frozen=True)
class MoveRequested:
    cmd_id: str
    x: float | None
    y: float | None
    z: float | None
    feedrate: float | None
    homed: frozenset[str]
    profile: PrinterProfile
    hold_id: int | None = None  # only for this hold: a late move for an earlier hold is refused


@dataclass(frozen=True)
class GcodeRequested:
    cmd_id: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class ReleaseRequested:
    cmd_id: str | None = None
    disarm: bool = False
    reason: str = "requested"  # e.g. broker_lost when the bridge itself lost the broker
    hold_id: int | None = None  # only this hold: a late release must not end a newer hold


@dataclass(frozen=True)
class HolderOffline:
    holder: str


@dataclass(frozen=True)
class HolderOnline:
    holder: str


@dataclass(frozen=True)
class BrokerLost:
    """Our connection to the broker dropped (paho's thread says so)."""


@dataclass(frozen=True)
class BrokerBack:
    """Connected again, subscriptions restored: the holder's retained status is on its way."""


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class PrintStarted:
    path: str | None = None  # the printed file, named in the 'held' event
    started_at: float | None = None


@dataclass(frozen=True)
class PrintStopped:
    reason: str  # done, cancelled, failed, error, disconnected, cancel requested


HoldInput = (
    HoldCommand
    | LayerReached
    | OriginReported
    | TokenSeen
    | MoveRequested
    | GcodeRequested
    | ReleaseRequested
    | HolderOffline
    | HolderOnline
    | BrokerLost
    | BrokerBack
    | Tick
    | PrintStarted
    | PrintStopped
)


# ------------------------------------------------------------------ actions
@dataclass(frozen=True)
class SetJobOnHold:
    on: bool


@dataclass(frozen=True)
class SendGcode:
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    cmd_id: str
    ok: bool
    data: dict[str, Any] | None = None
    code: str | None = None  # error code when not ok
    message: str | None = None


@dataclass(frozen=True)
class PublishEvent:
    event: str
    payload: dict[str, Any] = field(default_factory=dict)


Action = SetJobOnHold | SendGcode | Reply | PublishEvent
