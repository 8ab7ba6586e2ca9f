"""The state of one printer's machine: immutable values, replaced on every step.

``Setup`` never changes while the process runs; ``MachineState`` is what the printer and
its cameras were last seen doing, the arming, and the hold being handled (``Run``).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from printmesh_coordinator.bounds import Fit
from printmesh_coordinator.config import CameraRef, PrinterConfig
from printmesh_coordinator.messages import XYZ, Held, ImageArrived
from printmesh_core.models.camera import CaptureResult
from printmesh_core.models.coordinator import CapturedImage, CaptureFailure, LayerCapture, ReleaseInfo, RunPhase
from printmesh_core.models.printer import HoldPlan, PrinterHold, PrinterProfile

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
STEM_MAX = 64  # characters of the G-code file's stem kept in a job folder's name
DONE_KEPT = 64  # holds remembered as handled, so a redelivered 'held' is not handled twice


def stamp(ts: float) -> str:
    """``YYYYmmdd_HHMMSS`` in UTC, so coordinators in different time zones name files alike."""
    return time.strftime("%Y%m%d_%H%M%S", time.gmtime(ts))


def job_name(path: str | None, started_at: float | None) -> str:
    """``<file stem>_<start time>``: every coordinator derives the same folder from the same print.

    Only the file's own name counts (never its folders), reduced to letters, digits, '_', '-'
    and '.', never starting or ending with '.'. A stem longer than ``STEM_MAX`` keeps its first
    ``STEM_MAX`` characters plus 8 hex digits of the name's sha256, so two long names that share
    a beginning stay apart and a folder name is at most 89 characters, far below the 255 bytes
    a file system allows (a 240-character G-code name lost every capture before). The name as
    OctoPrint gave it is kept in every layer's metadata and in the summary (``gcode_file``).
    """
    base = (path or "").replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = _UNSAFE.sub("_", stem).strip("._") or "job"
    if len(stem) > STEM_MAX:
        digest = hashlib.sha256(base.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem = f"{stem[:STEM_MAX].rstrip('._')}-{digest}"
    return f"{stem}_{stamp(started_at)}" if started_at is not None else f"{stem}_unknown-start"


@dataclass(frozen=True)
class Setup:
    """What the machine is for: one printer's config, and who we are."""

    printer: PrinterConfig
    coordinator: str  # our node id
    session: str  # unique per printer and new at every start: request ids never repeat or collide
    owners: bool = False  # sharing: owners: arm only as the printer's owner; handle only holds naming us

    @property
    def name(self) -> str:
        return self.printer.node

    @property
    def holder(self) -> str:
        return f"{self.coordinator}/coordinator"

    @cached_property
    def plan(self) -> HoldPlan:
        """Built once: it is compared with the bridge's armed plan after every input."""
        p = self.printer.plan
        return HoldPlan(layers=sorted(set(p.layers)), every=p.every, first=p.first, last=p.last)

    @property
    def cameras(self) -> list[CameraRef]:
        return self.printer.cameras


@dataclass(frozen=True)
class Job:
    name: str
    gcode_file: str | None
    started_at: float | None


@dataclass(frozen=True)
class Pending:
    """The one thing a run waits for: an answer (by request id), or a file written (by path)."""

    kind: Literal["move", "return", "capture", "store", "release", "metadata"]
    key: str  # request id, or the file's path
    since: float
    deadline: float


@dataclass(frozen=True)
class Run:
    """One hold being handled, from the ``held`` event until its metadata is written."""

    hold_id: int
    layer: int
    z: float | None
    capture_z: float
    origin: XYZ | None
    job: Job
    bridge_ts: float
    started: float
    deadline: float
    phase: RunPhase = "moving"
    point: int = 0
    camera: int = 0
    pending: Pending | None = None
    settle_until: float | None = None
    answer: CaptureResult | None = None
    image: ImageArrived | None = None
    images: tuple[CapturedImage, ...] = ()
    failures: tuple[CaptureFailure, ...] = ()
    t_moves: float = 0.0
    t_settle: float = 0.0
    t_capture: float = 0.0
    t_store: float = 0.0
    t_release: float = 0.0
    release: ReleaseInfo | None = None
    ended: float | None = None
    metadata: LayerCapture | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.job.name, self.hold_id

    @property
    def releasing_or_later(self) -> bool:
        return self.phase in ("releasing", "finishing")


@dataclass(frozen=True)
class Arming:
    request_id: str | None = None
    deadline: float | None = None
    retry_at: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class Stats:
    """Per job, for the state topic and Home Assistant: what this coordinator captured."""

    job: str | None = None
    last_layer: int | None = None
    images: int = 0
    failures: int = 0
    message: str | None = None


@dataclass(frozen=True)
class MachineState:
    setup: Setup
    seq: int = 0
    profile: PrinterProfile | None = None
    fit: Fit | None = None
    bridge_online: bool | None = None
    hold_status: PrinterHold | None = None
    arming: Arming = Arming()
    holder_online: bool = False  # the holder named by hold_status is a coordinator seen online
    owns: bool | None = None  # sharing: owners: we own the printer (ownership.py); None: not decided yet
    down: dict[tuple[str, str | None], str] = field(default_factory=dict)  # camera (or agent) -> why offline
    job: Job | None = None
    active: bool | None = None
    ended: tuple[str, str] | None = None  # (job, outcome) of the print that ended last
    run: Run | None = None
    queued: Held | None = None  # a hold that began while the previous one's metadata was being written
    done: tuple[tuple[str, int], ...] = ()
    stats: Stats = Stats()

    def camera_down(self, ref: CameraRef) -> str | None:
        """Why this camera cannot capture now, or None (unknown counts as up: the capture will tell)."""
        agent = self.down.get((ref.node, None))
        if agent is not None:
            return f"camera agent {ref.node} is offline ({agent})"
        cam = self.down.get((ref.node, ref.camera))
        return None if cam is None else f"camera {ref.camera} on {ref.node} is offline ({cam})"


def initial(setup: Setup) -> MachineState:
    return MachineState(setup=setup)
