"""Print watch: the coordinator's verdict on one captured layer (``<coord>/coordinator/<printer>/watch``).

The same model is the layer's watch sidecar in the job folder (``layer_0015_watch_<time>.json``,
written after the layer's metadata, which is already on disk when the verdict is known), so a
dashboard and a script reading the captures folder see the same fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART, Payload

VerdictKind = Literal["ok", "spaghetti", "shift", "detach", "blackout", "unknown_change"]
WatchAction = Literal["none", "notify", "pause"]


class WatchRegion(BaseModel):
    """Where one image changed unexpectedly, in that image's pixels."""

    model_config = PART

    image: str = Field(description="The image's file name in the job folder.")
    x: int = Field(ge=0, description="Left edge, pixels.")
    y: int = Field(ge=0, description="Top edge, pixels.")
    width: int = Field(ge=0, description="Pixels.")
    height: int = Field(ge=0, description="Pixels.")


class WatchVerdict(Payload):
    """One captured layer compared with the same grid positions and cameras at earlier captured layers."""

    printer: str = Field(description="The bridge's node id.")
    job: str = Field(description="The job folder's name.")
    layer: int = Field(ge=1, description="The captured layer judged.")
    verdict: VerdictKind = Field(description="ok, or what the change looks like.")
    confidence: float = Field(ge=0, le=1, description="How sure the detector is of the verdict, 0..1.")
    score: float = Field(ge=0, le=1_000_000, description="The layer's change score (growth taken out).")
    problem: bool = Field(description="verdict is not ok and confidence is at least watch.min_confidence.")
    action: WatchAction = Field(
        description="What the coordinator does about it: pause (sends the bridge's pause after the release), "
        "notify (this message only) or none (not a problem, or on_problem: none)."
    )
    regions: list[WatchRegion] = Field(default_factory=list, description="Where the images changed unexpectedly.")
    flagged: list[str] = Field(default_factory=list, description="File names of the images that show the problem.")
    compared_with: list[int] = Field(default_factory=list, description="The earlier captured layers compared with.")
    elapsed_ms: float = Field(ge=0, le=1e9, description="Time the detector took for this layer, ms.")
    metadata_path: str | None = Field(
        default=None, description="The layer's metadata file, relative to captures_dir; null if not written."
    )
    reason: str | None = Field(default=None, description="The detector's one line saying why, for a notification.")
    note: str | None = Field(default=None, description="Why the layer could not be judged fully, if so.")
    silhouette: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Images also checked against the G-code's silhouette: the bridge's layer outlines projected"
        " with the camera's geometry (0: no outlines, no geometry, or the grid points' first capture).",
    )
    agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Mean overlap (intersection over union) of the part and the G-code's silhouette in this layer's"
        " images; null without a silhouette. A camera whose geometry is right gives about 0.6-0.85; far below"
        " that the geometry is off: printmesh coordinator --calibrate (docs/watch.md).",
    )
