"""Coordinator settings (the ``coordinator:`` section), strict like every other section.

One coordinator serves several printers, each with its own plan, grid and cameras. What
can be checked without the printer (an even grid size, a duplicate camera name, a
printer id that would collide with the coordinator's own topics) fails here, naming the
key; the bounds need the printer's profile and are checked against it at run time and by
``--preview`` (``bounds.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from printmesh_coordinator.store_config import StoreConfig
from printmesh_core import contract
from printmesh_core.config import AgentSettings, Strict, check_unique
from printmesh_core.models.camera import HEIGHT_MAX, WIDTH_MAX
from printmesh_core.models.coordinator import XY
from printmesh_core.models.printer import HoldPlan
from printmesh_core.topics import REPLY, TopicError, check_name, check_segment

# Levels the coordinator uses right below <node>/coordinator/: a printer id may not be one.
RESERVED = contract.COMPONENT_LEVELS | {REPLY, *contract.COORDINATOR_FLEET.levels}
Sharing = Literal["owners", "subscription"]
GRID_MAX = 15  # 15×15 = 225 points: far more than a hold should take
POINTS_MAX = 225


def _segment(value: str, what: str) -> str:
    try:
        return check_segment(value, what)
    except TopicError as exc:
        raise ValueError(str(exc)) from None


def _name(value: str, what: str) -> str:
    """A name that is a topic level and a folder or file name part (``topics.check_name``)."""
    try:
        return check_name(value, what)
    except TopicError as exc:
        raise ValueError(str(exc)) from None


class GridConfig(Strict):
    """An odd N×N grid around ``center`` (the bed centre when unset), or an explicit point list."""

    size: int | None = Field(default=None, ge=1, le=GRID_MAX, description="N of an odd N×N grid (1, 3, 5...).")
    spacing: float | None = Field(default=None, gt=0, le=1000, description="mm between neighbouring points.")
    center: XY | None = Field(default=None, description="Grid centre, mm; unset: the centre of the bed.")
    points: list[XY] | None = Field(
        default=None, min_length=1, max_length=POINTS_MAX, description="Explicit points, captured in this order."
    )

    @model_validator(mode="after")
    def _one_form(self) -> GridConfig:
        if self.points is not None:
            extra = [k for k in ("size", "spacing", "center") if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"give either points or size/spacing/center, not both (also set: {', '.join(extra)})")
            return self
        size = 3 if self.size is None else self.size
        if size % 2 == 0:
            raise ValueError(f"size must be odd (1, 3, 5...) so the grid has a centre point, got {size}")
        self.size = size
        if self.spacing is None:
            self.spacing = 40.0  # the layer-capture plugin's default
        return self


class CameraRef(Strict):
    """One camera of a camera agent: every grid point is captured by each."""

    node: str = Field(description="Node id of the camera agent.")
    camera: str = Field(description="Camera name in that agent's config.")
    name: str | None = Field(
        default=None, description="Name in file names and metadata; default: the camera name. Unique per printer."
    )
    width: int | None = Field(default=None, ge=16, le=WIDTH_MAX, description="Capture width, pixels.")
    height: int | None = Field(default=None, ge=16, le=HEIGHT_MAX, description="Capture height, pixels.")
    quality: int | None = Field(default=None, ge=1, le=100, description="JPEG quality; the camera's when unset.")

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        return _name(value, "node id")

    @field_validator("camera", "name")
    @classmethod
    def _cam(cls, value: str | None) -> str | None:
        return None if value is None else _name(value, "camera name")

    @property
    def tag(self) -> str:
        return self.name or self.camera


class Timeouts(Strict):
    """Seconds. Every step has one; any that expires aborts the sequence and releases the print."""

    move: float = Field(default=30.0, gt=0, le=600, description="One move, request to the bridge's answer.")
    capture: float = Field(default=15.0, gt=0, le=600, description="One capture, request to answer and image.")
    release: float = Field(default=60.0, gt=0, le=600, description="The release, head's way back included.")
    sequence: float = Field(
        default=240.0, gt=0, le=3600, description="A whole hold; keep it below the bridge's max_hold (300 s)."
    )
    arm: float = Field(default=10.0, gt=0, le=600, description="Arming answer; also the retry delay after a failure.")


class WatchConfig(Strict):
    """Print watch (docs/watch.md): each captured layer compared with the earlier ones, after the release."""

    enabled: bool = Field(default=True, description="Judge every captured layer (numpy and OpenCV, off the loop).")
    on_problem: Literal["notify", "pause", "none"] = Field(
        default="notify",
        description="notify: publish the verdict (problem on); pause: also send the bridge's pause after the "
        "hold's release; none: publish the verdict, never raise a problem.",
    )
    min_confidence: float = Field(
        default=0.6, ge=0, le=1, description="A verdict other than ok below this confidence only notifies."
    )


class PrinterConfig(Strict):
    node: str = Field(description="The bridge's node id; also the printer's folder under captures_dir.")
    plan: HoldPlan = Field(description="When to capture: every N layers, explicit layers, first, last.")
    grid: GridConfig = Field(default_factory=GridConfig, description="Where to capture.")
    cameras: list[CameraRef] = Field(min_length=1, max_length=16, description="Each captures every grid point.")
    z_clearance: float = Field(
        default=5.0, gt=0, le=500, description="mm above the current layer; at least the bridge's clearance (2 mm)."
    )
    settle: float = Field(default=0.5, ge=0, le=60, description="Seconds after each move before capturing.")
    feedrate: float | None = Field(
        default=None, ge=1, le=100_000, description="XY travel, mm/min; bridge's default. Inside the bridge's limits."
    )
    return_to_origin: bool = Field(
        default=True, description="Move back over the hold origin before releasing (the release always returns it)."
    )
    margin: float = Field(default=5.0, ge=0, le=500, description="mm kept from the edges of the bed.")
    max_z: float | None = Field(default=None, gt=0, le=10_000, description="Highest Z allowed, mm; unset: the volume.")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    watch: WatchConfig = Field(default_factory=WatchConfig, description="Print watch: notice a failing print.")

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        value = _name(value, "node id")
        if value in RESERVED:
            raise ValueError(f"{value!r} is reserved below <node>/coordinator/ ({', '.join(sorted(RESERVED))})")
        return value

    @field_validator("cameras")
    @classmethod
    def _unique(cls, value: list[CameraRef]) -> list[CameraRef]:
        check_unique([c.tag for c in value], "camera (set name: to tell two cameras of the same name apart)")
        return value


class CoordinatorSection(Strict):
    captures_dir: Path = Field(default=Path("captures"), description="Images and metadata go below this folder.")
    store: StoreConfig = Field(
        default_factory=StoreConfig,
        description="Where captures are stored: type local (captures_dir, the default) or s3 (a bucket, same keys).",
    )
    fsync: bool = Field(
        default=False,
        description="fsync every file before its rename: survives a power cut, but costs the print hold time "
        "(tens of ms per image on an SD card). Writes are atomic either way.",
    )
    pages: bool = Field(
        default=True,
        description="Write a job page beside the images (index.html, thumbnails, a timelapse video per grid "
        "position and camera), updated after every layer and finished with the videos when the job ends.",
    )
    helpers: Literal["process", "thread"] = Field(
        default="process",
        description="Where the print watch and the job pages do their work. process: helper processes (their "
        "Python never holds the loop's interpreter lock; about 120 MB more RSS with OpenCV imported twice). "
        "thread: threads of the coordinator (less memory, for a small machine with few printers).",
    )
    sharing: Sharing = Field(
        default="owners",
        description="How coordinators of one share_group split the printers. owners: each printer belongs to one "
        "live coordinator (rendezvous hashing over the group's retained statuses; any broker). subscription: an "
        "MQTT 5 shared subscription hands each hold to one member (brokers with $share only).",
    )
    share_group: str | None = Field(
        default="printmesh",
        description="The group of coordinators that share printers (with sharing: subscription, the shared "
        "subscription's group). null: this coordinator serves its printers alone.",
    )
    printers: list[PrinterConfig] = Field(default_factory=list, description="Printers this coordinator serves.")

    @field_validator("share_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value is None else _segment(value, "share group")

    @field_validator("printers")
    @classmethod
    def _unique(cls, value: list[PrinterConfig]) -> list[PrinterConfig]:
        check_unique([p.node for p in value], "printer")
        return value

    @model_validator(mode="after")
    def _shared(self) -> CoordinatorSection:
        if self.sharing == "subscription" and self.share_group is None:
            raise ValueError("share_group is null, but sharing: subscription needs one (the shared subscription group)")
        return self

    @property
    def owners(self) -> bool:
        """Printers split by ownership (``ownership.py``): the default, on any broker."""
        return self.sharing == "owners" and self.share_group is not None

    @property
    def shared_subscription(self) -> bool:
        return self.sharing == "subscription" and self.share_group is not None


class CoordinatorSettings(AgentSettings):
    coordinator: CoordinatorSection = CoordinatorSection()
