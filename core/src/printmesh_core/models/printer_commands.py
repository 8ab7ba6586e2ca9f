"""The printer's command requests (``<node>/printer/cmd/<name>``), answered by the OctoPrint bridge.

Kept apart from the bridge's published payloads (``printer.py``, which re-exports them) so
each file stays readable; the limits here keep junk out of the hold and move code.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from printmesh_core.models.base import COORD_MAX, PART
from printmesh_core.models.envelope import CommandRequest

LAYER_MAX = 1_000_000
GCODE_LINES_MAX = 50
GCODE_LINE_MAX = 256


class _Part(BaseModel):
    model_config = PART


class HoldPlan(_Part):
    """Which layers to hold at. A layer matches if any rule matches."""

    layers: list[int] = Field(default_factory=list, max_length=10_000, description="Explicit layer numbers, from 1.")
    every: int | None = Field(default=None, ge=1, le=LAYER_MAX, description="Every N-th layer: N, 2N, 3N, ...")
    first: bool = Field(default=False, description="The first layer seen in the print.")
    last: bool = Field(default=False, description="The last layer, when the layer count is known.")

    @model_validator(mode="after")
    def _check(self) -> HoldPlan:
        if any(not 1 <= layer <= LAYER_MAX for layer in self.layers):
            raise ValueError(f"layers count from 1 and are at most {LAYER_MAX}")
        if not (self.layers or self.every or self.first or self.last):
            raise ValueError("an empty plan holds nothing: give layers, every, first or last")
        return self


class HoldRequest(CommandRequest):
    """``<node>/printer/cmd/hold``: hold now, at one layer, or arm a plan (replaces the armed one)."""

    now: bool = Field(default=False, description="Hold the running print as soon as possible.")
    layer: int | None = Field(default=None, ge=1, le=LAYER_MAX, description="Hold once at this layer.")
    plan: HoldPlan | None = Field(default=None, description="Hold at every layer the plan matches.")
    holder: str | None = Field(
        default=None,
        max_length=200,
        description="'<node_id>/<component>' of the requester; the hold is released when its status goes offline.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> HoldRequest:
        if sum((self.now, self.layer is not None, self.plan is not None)) != 1:
            raise ValueError("give exactly one of now, layer or plan")
        return self


class ReleaseRequest(CommandRequest):
    """``<node>/printer/cmd/release``: return the head and let the print continue."""

    disarm: bool = Field(default=False, description="Also drop the armed plan.")
    hold_id: int | None = Field(
        default=None, ge=1, description="Act only on this hold (its hold_id); another one running: stale_hold."
    )


class PauseRequest(CommandRequest):
    """``<node>/printer/cmd/pause``: OctoPrint's pause (runs the pause scripts)."""


class ResumeRequest(CommandRequest):
    """``<node>/printer/cmd/resume``: OctoPrint's resume."""


class CancelRequest(CommandRequest):
    """``<node>/printer/cmd/cancel``: cancel the print; a hold is released first."""


class MoveRequest(CommandRequest):
    """``<node>/printer/cmd/move``: move the held head, absolute mm; an omitted axis stays put.

    Answered once the printer has finished the move (M400 + echo token), or refused with
    the offending axis and value.
    """

    x: float | None = Field(default=None, ge=-COORD_MAX, le=COORD_MAX, description="Target X, mm.")
    y: float | None = Field(default=None, ge=-COORD_MAX, le=COORD_MAX, description="Target Y, mm.")
    z: float | None = Field(default=None, ge=-COORD_MAX, le=COORD_MAX, description="Target Z, mm.")
    feedrate: float | None = Field(default=None, gt=0, le=100_000, description="XY travel speed, mm/min.")
    hold_id: int | None = Field(
        default=None, ge=1, description="Act only on this hold (its hold_id); another one running: stale_hold."
    )


class GcodeRequest(CommandRequest):
    """``<node>/printer/cmd/gcode``: send these lines; motion is refused while held (use move)."""

    lines: list[str] = Field(min_length=1, max_length=GCODE_LINES_MAX, description="One command per line.")

    @model_validator(mode="after")
    def _check(self) -> GcodeRequest:
        for line in self.lines:
            if not line.strip() or len(line) > GCODE_LINE_MAX or any(c in line for c in "\r\n\x00"):
                raise ValueError(f"each line must be one non-empty command of at most {GCODE_LINE_MAX} characters")
        return self
