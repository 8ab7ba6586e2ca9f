"""What goes into the state machine and what comes out: plain, typed values, no I/O.

Inputs are what the shell heard (a bridge event, an answer, an image, a file written or
not, a tick of the clock); commands are what the machine wants done (send a request,
write a file, publish). Keeping both as data is what lets ``decide`` be tested without a
broker, a disk or a clock, and lets the shell stay a loop that does what it is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from printmesh_core.models.coordinator import CoordinatorState, LayerCapture
from printmesh_core.models.printer import HoldPlan, PrinterHold, PrinterJob, PrinterProfile


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class XYZ:
    x: float
    y: float
    z: float


@dataclass(frozen=True)
class Held:
    """The bridge's ``held`` event: the print stopped right before ``layer``'s first line."""

    hold_id: int
    layer: int | None
    z: float | None  # the layer's Z
    origin: XYZ | None  # where the head was held; it goes back there
    path: str | None  # the printed file
    started_at: float | None  # when the print started
    ts: float  # the event's own time (bridge clock), to order it against hold status messages


@dataclass(frozen=True)
class HoldReleased:
    """The bridge's ``released`` event: a hold ended, whoever asked."""

    hold_id: int | None
    reason: str | None
    returned: bool | None
    error: str | None = None


@dataclass(frozen=True)
class LayerMissedSeen:
    """The bridge's ``missed`` event: a planned layer passed unheld while it could not reach its holder."""

    layer: int
    z: float | None
    reason: str
    at: float  # when the layer started (bridge clock)
    path: str | None
    started_at: float | None
    holder: str | None  # only the holder records it


@dataclass(frozen=True)
class HoldStatusSeen:
    status: PrinterHold  # retained <printer>/printer/hold
    holder_online: bool = False  # its holder is a coordinator the shell last heard online


@dataclass(frozen=True)
class ProfileSeen:
    profile: PrinterProfile


@dataclass(frozen=True)
class JobSeen:
    job: PrinterJob


@dataclass(frozen=True)
class ActivitySeen:
    """From the retained printer state: a job is running (printing, paused, held...) or not."""

    active: bool


@dataclass(frozen=True)
class PrintEnded:
    """OctoPrint's PrintDone / PrintFailed / PrintCancelled."""

    outcome: Literal["done", "failed", "cancelled"]


@dataclass(frozen=True)
class BridgePresence:
    online: bool


@dataclass(frozen=True)
class CameraPresence:
    """A camera agent's status (``camera`` None) or one camera's availability."""

    node: str
    camera: str | None
    online: bool
    reason: str | None = None


@dataclass(frozen=True)
class CoordinatorPresence:
    """Another coordinator's status; the shell only hands it to a printer whose hold status names it."""

    holder: str  # '<node>/coordinator'
    online: bool


@dataclass(frozen=True)
class OwnerSeen:
    """Whether we own the printer now (``ownership.py``): with ``sharing: owners``, only the owner arms it."""

    mine: bool


@dataclass(frozen=True)
class Answer:
    """A command response (move, capture, release or hold), matched to its request by id."""

    request_id: str
    ok: bool
    data: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ImageArrived:
    """JPEG bytes on a camera's capture topic; the shell hashed them on arrival."""

    capture_id: str
    data: bytes
    sha256: str


@dataclass(frozen=True)
class Written:
    path: str


@dataclass(frozen=True)
class WriteFailed:
    path: str
    error: str


@dataclass(frozen=True)
class Tick:
    """Time passed: lets deadlines and the settle delay take effect."""


@dataclass(frozen=True)
class Abort:
    reason: str


Input = (
    Held
    | HoldReleased
    | LayerMissedSeen
    | HoldStatusSeen
    | ProfileSeen
    | JobSeen
    | ActivitySeen
    | PrintEnded
    | BridgePresence
    | CameraPresence
    | CoordinatorPresence
    | OwnerSeen
    | Answer
    | ImageArrived
    | Written
    | WriteFailed
    | Tick
    | Abort
)


# ------------------------------------------------------------------ commands
@dataclass(frozen=True)
class SendHold:
    request_id: str
    plan: HoldPlan
    holder: str


@dataclass(frozen=True)
class SendMove:
    request_id: str
    x: float
    y: float
    z: float | None  # None: the bridge keeps the head where it is, at least at the layer's clearance
    feedrate: float | None
    hold_id: int | None = None  # the bridge refuses the move if another hold is running


@dataclass(frozen=True)
class SendCapture:
    request_id: str
    node: str
    camera: str
    label: str
    width: int | None
    height: int | None
    quality: int | None


@dataclass(frozen=True)
class SendRelease:
    request_id: str
    hold_id: int  # sent: the bridge refuses to end any other hold with it


@dataclass(frozen=True)
class WriteImage:
    path: str  # relative to captures_dir
    data: bytes


@dataclass(frozen=True)
class WriteMetadata:
    path: str
    metadata: LayerCapture


@dataclass(frozen=True)
class WriteSummary:
    job: str
    outcome: str
    gcode_file: str | None
    print_start_time: float | None


@dataclass(frozen=True)
class PublishState:
    state: CoordinatorState
    progress: bool = False  # only the running hold's progress changed: the shell may pace it


@dataclass(frozen=True)
class PublishCapture:
    metadata: LayerCapture


@dataclass(frozen=True)
class Note:
    """A log line worth keeping: why something was ignored, refused or failed."""

    level: Literal["info", "warning", "error"]
    text: str


Command = (
    SendHold
    | SendMove
    | SendCapture
    | SendRelease
    | WriteImage
    | WriteMetadata
    | WriteSummary
    | PublishState
    | PublishCapture
    | Note
)
