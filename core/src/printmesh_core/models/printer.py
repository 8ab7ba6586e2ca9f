"""OctoPrint bridge telemetry (``<node>/printer/...``); re-exports the hold models and the command requests.

Every value is what OctoPrint (or the G-code actually sent) says, never a guess dressed up
as a measurement: fan speeds are labelled as inferred from M106/M107, a time left keeps
its origin, and a value OctoPrint does not have is null rather than 0 or -1. Field names
are snake_case like every other printmesh payload; OctoPrint's camelCase names appear
only in descriptions, to help readers who know OctoPrint.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from printmesh_core.models.base import COORD_MAX, PART, Coord, Payload, Seconds, Timestamp
from printmesh_core.models.printer_commands import (  # re-exported: one import for every printer model
    GCODE_LINE_MAX,
    GCODE_LINES_MAX,
    LAYER_MAX,
    CancelRequest,
    GcodeRequest,
    HoldPlan,
    HoldRequest,
    MoveRequest,
    PauseRequest,
    ReleaseRequest,
    ResumeRequest,
)
from printmesh_core.models.printer_hold import (  # re-exported too
    HoldEnded,
    HoldPhase,
    HoldStarted,
    LayerMissed,
    Point,
    PrinterHeld,
    PrinterHold,
)

__all__ = [
    "COORD_MAX", "GCODE_LINES_MAX", "GCODE_LINE_MAX", "LAYER_MAX", "CancelRequest", "GcodeRequest", "HoldEnded",
    "HoldPhase", "HoldPlan", "HoldRequest", "HoldStarted", "LayerMissed", "MoveRequest", "PauseRequest", "Point",
    "PrinterHeld", "PrinterHold", "ReleaseRequest", "ResumeRequest",
]  # fmt: skip

HeaterState = Literal["heating", "cooling", "at_target", "idle"]
EtaMethod = Literal["exponential", "linear", "none"]


class _Part(BaseModel):
    model_config = PART


# ------------------------------------------------------------------ connection, state, profile
class PrinterConnection(Payload):
    """Retained on ``<node>/printer/connection``: the serial link to the printer."""

    state: str = Field(description="OctoPrint's connection state text, e.g. 'Operational', 'Offline', 'Printing'.")
    port: str | None = Field(default=None, description="Serial port, e.g. '/dev/ttyUSB0' or 'VIRTUAL'.")
    baudrate: int | None = Field(default=None, description="Baud rate; null when auto or unknown.")
    firmware: str | None = Field(default=None, description="Firmware name from M115 (FirmwareData event).")


class StateFlags(_Part):
    """OctoPrint's state flags (``state.flags`` in ``get_current_data()``)."""

    operational: bool = Field(default=False, description="Connected and accepting commands.")
    printing: bool = Field(default=False, description="A job is running (not paused).")
    paused: bool = Field(default=False, description="The job is paused.")
    pausing: bool = Field(default=False, description="A pause was requested and is draining the buffer.")
    resuming: bool = Field(default=False, description="A resume is in progress.")
    cancelling: bool = Field(default=False, description="A cancel is in progress.")
    finishing: bool = Field(default=False, description="The last line was sent; waiting for the printer.")
    error: bool = Field(default=False, description="The connection is in an error state.")
    ready: bool = Field(default=False, description="Operational and idle: a job could start.")
    closed_or_error: bool = Field(default=False, description="Disconnected or in error (closedOrError).")
    sd_ready: bool = Field(default=False, description="The printer's SD card is initialised (sdReady).")


class PrinterState(Payload):
    """Retained on ``<node>/printer/state``."""

    text: str = Field(description="OctoPrint's state text, e.g. 'Printing', 'Paused', 'Offline'.")
    flags: StateFlags = Field(default_factory=StateFlags, description="OctoPrint's state flags.")
    error: str | None = Field(default=None, description="OctoPrint's error text, when in error.")
    current_z: Coord | None = Field(default=None, description="Last Z OctoPrint saw sent (currentZ), mm.")
    on_hold: bool = Field(default=False, description="printmesh holds the job (set_job_on_hold), not a pause.")


class CustomBox(_Part):
    """The profile's custom bounding box: where the head may go, in printer coordinates (mm)."""

    x_min: Coord = Field(description="mm.")
    x_max: Coord = Field(description="mm.")
    y_min: Coord = Field(description="mm.")
    y_max: Coord = Field(description="mm.")
    z_min: Coord = Field(description="mm.")
    z_max: Coord = Field(description="mm.")


class BuildVolume(_Part):
    width: float = Field(gt=0, le=COORD_MAX, description="X size, mm; the diameter of a circular bed.")
    depth: float = Field(gt=0, le=COORD_MAX, description="Y size, mm; equals width on a circular bed.")
    height: float = Field(gt=0, le=COORD_MAX, description="Z size, mm.")
    origin: Literal["lowerleft", "center"] = Field(
        default="lowerleft", description="Where X=0,Y=0 is: the front left corner, or the bed centre."
    )
    form_factor: Literal["rectangular", "circular"] = Field(default="rectangular", description="Bed shape.")
    custom_box: CustomBox | None = Field(default=None, description="Custom bounding box, if the profile sets one.")


class AxisSpeeds(_Part):
    """The profile's per-axis speeds (OctoPrint uses them for jogging), mm/min."""

    x: float = Field(default=6000, gt=0, description="mm/min.")
    y: float = Field(default=6000, gt=0, description="mm/min.")
    z: float = Field(default=200, gt=0, description="mm/min.")
    e: float = Field(default=300, gt=0, description="mm/min.")


class PrinterProfile(Payload):
    """Retained on ``<node>/printer/profile``: OctoPrint's selected printer profile."""

    id: str | None = Field(default=None, description="Profile identifier, e.g. '_default'.")
    name: str = Field(description="Profile name.")
    model: str | None = Field(default=None, description="Printer model text from the profile.")
    volume: BuildVolume = Field(description="Build volume used for every bounds check.")
    heated_bed: bool = Field(default=True, description="The printer has a heated bed.")
    heated_chamber: bool = Field(default=False, description="The printer has a heated chamber.")
    extruder_count: int = Field(default=1, ge=1, description="Number of extruders (tool0..toolN-1).")
    nozzle_diameter: float | None = Field(default=None, description="mm.")
    speeds: AxisSpeeds = Field(default_factory=AxisSpeeds, description="Per-axis speeds, mm/min.")


# ------------------------------------------------------------------ temperatures, fans, ETA
class HeaterTemperature(_Part):
    actual: float | None = Field(default=None, description="Measured, °C; null when the printer did not report it.")
    target: float | None = Field(default=None, description="Set point, °C; 0 means off; null when unknown.")
    offset: float | None = Field(default=None, description="OctoPrint's temperature offset, °C, if any.")


class PrinterTemperatures(Payload):
    """Retained on ``<node>/printer/temperature``: published on change or every N seconds."""

    tools: dict[str, HeaterTemperature] = Field(default_factory=dict, description="Keyed 'tool0', 'tool1', ...")
    bed: HeaterTemperature | None = Field(default=None, description="Null when the printer reports no bed.")
    chamber: HeaterTemperature | None = Field(default=None, description="Null when the printer reports no chamber.")


class FanSpeed(_Part):
    speed: float = Field(ge=0, le=100, description="Commanded speed, %, from the last M106/M107 sent.")
    raw: int = Field(ge=0, le=255, description="The same on the firmware's 0-255 scale.")
    command: str = Field(description="The line it came from, e.g. 'M106 P1 S128'.")
    at: Timestamp = Field(description="When that line was sent, Unix seconds.")


class PrinterFans(Payload):
    """Retained on ``<node>/printer/fans``: the speed each fan was last *told*, never measured.

    Tracked from the M106/M107 lines OctoPrint actually sent. A change made on the
    printer's own display, or by the firmware itself, is not seen.
    """

    fans: dict[str, FanSpeed] = Field(default_factory=dict, description="Keyed by fan index ('0', '1', ...).")


class HeaterEta(_Part):
    state: HeaterState = Field(description="heating, cooling, at_target (within tolerance) or idle (off and cool).")
    actual: float = Field(description="°C.")
    target: float = Field(description="°C; 0 = off.")
    goal: float | None = Field(default=None, description="Temperature the ETA is for, °C (target, or cool when off).")
    rate: float | None = Field(default=None, description="°C/s over the linear window; negative when cooling.")
    eta_linear: Seconds | None = Field(default=None, description="Seconds, from the ends of the linear window.")
    eta_exponential: Seconds | None = Field(default=None, description="Seconds, from a first-order fit.")
    eta: Seconds | None = Field(default=None, description="The chosen estimate, seconds; 0 when at target.")
    method: EtaMethod = Field(default="none", description="Which estimate ``eta`` is.")


class PrinterHeatingEta(Payload):
    """Retained on ``<node>/printer/heating``: heat-up and cool-down estimates per heater."""

    heaters: dict[str, HeaterEta] = Field(default_factory=dict, description="Keyed 'tool0', 'bed', 'chamber', ...")


# ------------------------------------------------------------------ job and layers
class PrinterJob(Payload):
    """Retained on ``<node>/printer/job``. Times are seconds; a value OctoPrint lacks is null."""

    file_name: str | None = Field(default=None, description="Display name of the selected file.")
    file_path: str | None = Field(default=None, description="Path in its storage.")
    file_size: int | None = Field(default=None, ge=0, description="Bytes.")
    file_origin: str | None = Field(default=None, description="'local' or 'sdcard'.")
    progress: float | None = Field(default=None, ge=0, le=100, description="Completion, % of the file's bytes.")
    file_position: int | None = Field(default=None, ge=0, description="Bytes of the file sent so far.")
    print_time: Seconds | None = Field(default=None, description="Seconds printed, pauses excluded (OctoPrint).")
    print_time_left: Seconds | None = Field(default=None, description="Seconds left, OctoPrint's estimate.")
    print_time_left_origin: str | None = Field(
        default=None, description="Where the time left comes from: 'linear', 'analysis', 'estimate', 'average', ..."
    )
    estimated_total: Seconds | None = Field(default=None, description="print_time + print_time_left, else analysis.")
    eta: str | None = Field(default=None, description="Expected end, ISO 8601 UTC.")
    eta_unix: float | None = Field(default=None, description="Expected end, Unix seconds.")
    started_at: Timestamp | None = Field(default=None, description="When the print started, Unix seconds.")
    time_since_start: Seconds | None = Field(
        default=None, description="Wall-clock seconds since start, pauses included."
    )


class LayerProgress(Payload):
    """Retained on ``<node>/printer/layer_progress``: where the print is, layer-wise, and how fast.

    Layers count from 1, as in ``LayerEvent`` (``<node>/printer/layer``); pauses and holds
    are not counted in the durations.
    """

    current: int | None = Field(default=None, ge=0, le=LAYER_MAX, description="Layer being printed, from 1.")
    total: int | None = Field(default=None, ge=0, le=LAYER_MAX, description="Layers in the file, when known.")
    current_height: Coord | None = Field(default=None, description="Z of the current layer, mm.")
    total_height: Coord | None = Field(default=None, description="Z of the last layer, mm, when known.")
    last_duration: Seconds | None = Field(default=None, description="Seconds the previous layer took.")
    average_duration: Seconds | None = Field(default=None, description="Mean seconds per finished layer.")
    durations: list[Seconds] = Field(default_factory=list, description="Seconds per finished layer (most recent last).")


class PrinterEvent(Payload):
    """One message on ``<node>/printer/event`` (not retained): OctoPrint's or printmesh's own."""

    event: str = Field(description="Event name, e.g. 'PrintStarted', 'ZChange', or printmesh's 'held'.")
    payload: dict[str, Any] | None = Field(default=None, description="The event's payload made JSON-safe; may be null.")
    source: Literal["octoprint", "printmesh"] = Field(
        default="octoprint", description="Who fired it: OctoPrint, or printmesh's hold machine."
    )
