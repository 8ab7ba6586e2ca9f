"""What the print watch says about one captured layer: a verdict, its confidence and where it looked.

Strict like every payload part (unknown keys refused, finite numbers): the coordinator writes
it into the layer's metadata and publishes it, so a reader gets exactly these fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART

Kind = Literal["ok", "spaghetti", "shift", "detach", "blackout", "unknown_change"]
PROBLEMS: frozenset[str] = frozenset({"spaghetti", "shift", "detach", "blackout", "unknown_change"})


class Region(BaseModel):
    """A changed area of one image, in that image's pixels (full size, as captured)."""

    model_config = PART

    camera: str = Field(description="Camera name of the image.")
    point: int = Field(ge=0, description="Grid point index of the image.")
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(ge=0)
    h: int = Field(ge=0)


class Verdict(BaseModel):
    """The watch's judgement of one captured layer against the earlier captures of the same positions."""

    model_config = PART

    layer: int = Field(ge=0, description="The captured layer judged.")
    verdict: Kind = Field(description="ok, or the kind of problem seen.")
    confidence: float = Field(ge=0, le=1, description="How sure the verdict is, 0..1.")
    score: float = Field(ge=0, description="Change score: unexplained change, relative to the detection threshold.")
    region: list[Region] = Field(default_factory=list, description="Where the unexplained change is, per image.")
    flagged: list[str] = Field(default_factory=list, description="Image names (camera/point) that show it.")
    compared_with: int | None = Field(default=None, description="The earlier captured layer compared with.")
    elapsed_ms: float = Field(ge=0, description="Time the judgement took, ms.")
    reason: str = Field(default="", description="One line saying why, for a notification.")
    silhouette: int = Field(
        default=0, ge=0, description="Images checked against the G-code's silhouette (0: no outlines or geometry)."
    )
    agreement: float | None = Field(
        default=None, ge=0, le=1, description="Mean overlap of part and silhouette in this layer's images (None: none)."
    )

    @property
    def problem(self) -> bool:
        return self.verdict in PROBLEMS
