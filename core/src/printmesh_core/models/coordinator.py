"""Coordinator payloads: what it writes next to the images and publishes for dashboards.

The layer metadata file and the ``<coord>/coordinator/<printer>/capture`` message are the
same model, so a Node-RED flow and a script reading the captures folder see the same
fields. Field names follow the layer-capture plugin the output format comes from
(``layer``, ``z_height``, ``images``, ``settings.grid_spacing``...), with printmesh's
additions (cameras, checksums, failures, timings) alongside.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART, Coord, Payload, Seconds, Timestamp
from printmesh_core.models.camera import CameraGeometry
from printmesh_core.models.envelope import CommandRequest
from printmesh_core.models.printer import HoldPlan

FailureKind = Literal[
    "plan_refused",  # the grid does not fit the printer's volume (or no profile is known)
    "out_of_bounds",  # this hold's capture height is above the allowed Z
    "no_origin",  # the bridge did not report where the head was held, so it cannot move it
    "move_refused",  # the bridge answered a move with an error (out_of_range, below_layer, not_held...)
    "move_timeout",
    "capture_failed",  # the camera agent answered with an error
    "capture_timeout",  # no answer or no image in time
    "checksum_mismatch",  # the received JPEG's sha256 or size differs from the camera's answer
    "camera_offline",
    "write_failed",  # disk full or any other error writing a file
    "bridge_offline",
    "hold_lost",  # the bridge ended the hold itself (watchdog, print stopped, holder offline)
    "print_stopped",
    "sequence_timeout",
    "release_failed",
    "release_timeout",
    "aborted",  # the abort command, or the coordinator shutting down
    "layer_missed",  # a planned layer passed unheld: the bridge could not reach its holder (broker away)
]
Phase = Literal[
    "waiting", "refused", "armed", "moving", "settling", "capturing", "storing", "returning", "releasing", "finishing"
]
RunPhase = Literal["moving", "settling", "capturing", "storing", "returning", "releasing", "finishing"]


class _Part(BaseModel):
    model_config = PART


class XY(_Part):
    x: Coord = Field(description="mm.")
    y: Coord = Field(description="mm.")


class CapturedImage(_Part):
    """One JPEG on disk: which grid point, which camera, and the checksum it was verified with."""

    path: str = Field(description="Relative to captures_dir: '<printer>/<job>/layer_0010_pos_00_<time>.jpg'.")
    position: XY = Field(description="Where the head was, mm (the grid point).")
    z: Coord = Field(description="Head height during the capture, mm.")
    index: int = Field(ge=0, description="Grid index, in capture order.")
    camera: str = Field(description="The camera's name in the coordinator config.")
    camera_node: str = Field(description="Node id of the camera agent.")
    capture_id: str = Field(description="The camera agent's capture id (last level of its image topic).")
    sha256: str = Field(description="SHA-256 of the file, lowercase hex; equal to the camera's answer.")
    size: int = Field(ge=0, description="Bytes.")
    timestamp: Timestamp = Field(description="When the camera took the frame, Unix seconds.")
    geometry: CameraGeometry | None = Field(
        default=None, description="The camera's geometry on the carriage, from its answer (the print watch needs it)."
    )


class GridSettings(_Part):
    """The grid as configured; ``grid_spacing``/``grid_size`` are null for an explicit point list."""

    grid_spacing: float | None = Field(description="mm between neighbouring points.")
    grid_center: XY = Field(description="Centre of the grid (the configured one, or the bed centre).")
    grid_size: int | None = Field(description="N of the N×N grid.")
    points: int = Field(ge=1, description="Number of grid points.")
    z_clearance: Coord = Field(description="mm above the current layer (or the held head, if higher).")
    settle: Seconds = Field(description="Seconds waited after each move before capturing.")
    cameras: list[str] = Field(description="Camera names, each captures every point.")
    return_to_origin: bool = Field(description="An explicit, timed move back over the hold origin before release.")


class CaptureFailure(_Part):
    kind: FailureKind
    message: str = Field(description="What happened, in words; names the point, camera or key concerned.")
    at: Timestamp = Field(description="Unix seconds.")
    point: int | None = Field(default=None, description="Grid index concerned, if any.")
    camera: str | None = Field(default=None, description="Camera concerned, if any.")
    code: str | None = Field(default=None, description="The error code from the answer, e.g. 'out_of_range'.")


class HoldTimings(_Part):
    """Seconds, measured by the coordinator. Each step counts from its request to its answer, so
    the broker's round trips are inside ``waiting_for_moves``, ``capture`` and ``release``."""

    hold_duration: Seconds = Field(
        description="From the 'held' event reaching the coordinator to the release's answer."
    )
    waiting_for_moves: Seconds = Field(description="Sum of the times from each move request to its answer.")
    settle: Seconds = Field(description="Sum of the settle delays.")
    capture: Seconds = Field(description="Sum of the times from each capture request to having answer and image.")
    store: Seconds = Field(description="Writing the images.")
    release: Seconds = Field(description="From the release request to its answer (the head's way back included).")
    overhead: Seconds = Field(
        description="hold_duration minus waiting_for_moves, settle, capture and release: what storing the "
        "images and the coordinator's own steps add."
    )


class ReleaseInfo(_Part):
    reason: str | None = Field(default=None, description="The bridge's reason: 'requested', 'max_hold', ...")
    returned: bool | None = Field(default=None, description="The head is back at the hold origin.")
    by: Literal["coordinator", "bridge", "unknown"] = Field(
        description="coordinator: our release was answered; bridge: the bridge ended the hold on its own."
    )


class LayerCapture(Payload):
    """``layer_0010_metadata_<time>.json`` in the job folder, and ``<coord>/coordinator/<printer>/capture``."""

    layer: int = Field(ge=1, description="The layer held before, counted from 1.")
    z_height: Coord | None = Field(description="The layer's Z, mm (from the bridge).")
    timestamp: Timestamp = Field(description="When the hold began, Unix seconds.")
    gcode_file: str | None = Field(description="The printed file's path in OctoPrint's storage.")
    print_start_time: Timestamp | None = Field(description="When the print started, Unix seconds.")
    printer: str = Field(description="The bridge's node id.")
    job: str = Field(description="The job folder's name: '<file stem>_<start, UTC YYYYmmdd_HHMMSS>'.")
    hold_id: int = Field(description="The bridge's hold counter.")
    coordinator: str = Field(description="The coordinator's node id that handled this hold.")
    complete: bool = Field(description="Every grid point was captured by every camera, and the print released.")
    images: list[CapturedImage]
    settings: GridSettings
    failures: list[CaptureFailure]
    timings: HoldTimings
    release: ReleaseInfo | None = Field(description="How the hold ended; null if that is not known.")
    metadata_path: str | None = Field(
        description="This file, relative to captures_dir; null when it could not be written (see failures)."
    )
    missed: str | None = Field(
        default=None,
        description="Set when this planned layer was never held, to the bridge's reason: broker_unreachable, "
        "holder_unreachable. Then images is empty, hold_id is 0 and failures has one 'layer_missed'.",
    )


class SummaryFailure(CaptureFailure):
    layer: int


LayerStatus = Literal["complete", "incomplete", "missed"]


class SummaryLayer(BaseModel):
    """One planned (or held) layer of the job and what became of it."""

    model_config = PART

    layer: int
    status: LayerStatus = Field(description="complete, incomplete (see failures) or missed (see reason).")
    reason: str | None = Field(
        default=None,
        description="Why missed: broker_unreachable, holder_unreachable, or not_held (planned, passed, never held).",
    )
    images: int = 0
    failures: list[CaptureFailure] = Field(default_factory=list)


class JobSummary(Payload):
    """``job_summary.json`` in the job folder, and ``<coord>/coordinator/<printer>/summary``.

    Built from the layer metadata files in the folder, so it is right whichever
    coordinators handled the holds (a shared fleet writes it more than once, with the
    same content).
    """

    printer: str
    job: str
    gcode_file: str | None
    print_start_time: Timestamp | None
    ended_at: Timestamp = Field(description="When the summary was written, Unix seconds.")
    outcome: str = Field(description="How the print ended: done, cancelled, failed, or unknown.")
    layers_captured: list[int] = Field(description="Layers with at least one image.")
    layers_held: list[int] = Field(description="Every layer with a metadata file, complete or not.")
    images: int
    failures: list[SummaryFailure]
    total_hold_time: Seconds = Field(description="Seconds, sum of the holds' durations.")
    coordinators: list[str] = Field(description="Node ids of the coordinators that handled holds of this job.")
    layers: list[SummaryLayer] = Field(
        default_factory=list, description="Every planned or held layer, in order, with its status."
    )
    orphans: list[str] = Field(
        default_factory=list, description="Images in the job folder (relative paths) that no layer metadata lists."
    )


class CoordinatorState(Payload):
    """Retained on ``<coord>/coordinator/<printer>/state``: what the coordinator does with that printer."""

    printer: str
    phase: Phase = Field(
        description="waiting (no profile, bridge offline, or arming), refused (plan out of bounds), armed (idle), "
        "or the current step of a hold."
    )
    message: str | None = Field(default=None, description="Why waiting or refused; the last failure otherwise.")
    plan: HoldPlan
    armed: bool = Field(description="The bridge has our plan armed (by us, or by a coordinator sharing the fleet).")
    job: str | None = Field(default=None, description="Current job folder name, if known.")
    layer: int | None = Field(default=None, description="Layer being captured.")
    point: int | None = Field(default=None, description="Grid index being captured.")
    points: int = Field(description="Grid points per layer.")
    last_layer: int | None = Field(default=None, description="Last layer this coordinator captured in this job.")
    images: int = Field(default=0, description="Images this coordinator stored in this job.")
    failures: int = Field(default=0, description="Failures this coordinator recorded in this job.")
    grid: list[XY] | None = Field(
        default=None, description="The planned grid points in capture order, mm (for a grid preview); null if unknown."
    )


class CoordinatorFleet(Payload):
    """Retained on ``<coord>/coordinator/fleet``: the group this coordinator shares printers with, and its share.

    With ``sharing: owners`` every member of the group reads every other's, with its status:
    the owner of each printer follows from them (rendezvous hashing; ``ownership.py``).
    """

    group: str | None = Field(description="The coordinator's share_group; null: it serves its printers alone.")
    sharing: Literal["owners", "subscription"] = Field(description="How the group splits the printers.")
    serves: list[str] = Field(description="The printers in its config (bridge node ids).")
    owns: list[str] = Field(
        description="The printers it owns now: it arms them. With sharing: subscription, every printer it serves."
    )


class AbortRequest(CommandRequest):
    """``<coord>/coordinator/cmd/abort``: stop the running capture sequence and release the print."""

    printer: str | None = Field(default=None, max_length=64, description="Bridge node id; all printers when omitted.")
