"""Settings of the virtual camera (``source: {type: virtual}``), kept apart from config.py for size.

The virtual camera renders the part a printer has printed so far from the G-code file of
its job, so everything downstream (timelapses, contact sheets, failure checks) can be
judged without a printer or a webcam. Faults and realism are seeded so a test or a demo
gets the same frames every time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from printmesh_core.config import Strict

NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

Vector = tuple[float, float, float]


class FaultConfig(Strict):
    """A failure drawn into the frames from ``layer`` on."""

    kind: Literal["spaghetti", "shift", "detach", "blackout"] = Field(
        description="spaghetti: loose strands instead of layers; shift: layers above offset in X/Y; "
        "detach: the part displaced on the bed; blackout: black frames."
    )
    layer: int = Field(ge=1, description="First layer the fault shows at.")
    seed: int = Field(default=0, ge=0, description="Seed of the fault's random shape (direction, strands).")


class FixedPoseConfig(Strict):
    """Where a frame-mounted camera sits and what it looks at, in printer coordinates (mm)."""

    position: Vector = Field(default=(100.0, 20.0, 70.0), description="Camera position [x, y, z], mm.")
    look_at: Vector = Field(default=(100.0, 100.0, 0.0), description="Point the view is centred on [x, y, z], mm.")

    @model_validator(mode="after")
    def _distinct(self) -> FixedPoseConfig:
        if self.position == self.look_at:
            raise ValueError("position and look_at must differ")
        return self


class HeadPoseConfig(Strict):
    """A camera on the carriage: a fixed offset from the nozzle and a look-down angle."""

    offset: Vector = Field(default=(0.0, -55.0, 45.0), description="Camera position relative to the nozzle, mm.")
    pitch: float = Field(default=45.0, ge=0, le=89, description="Look-down angle below horizontal, degrees.")


class RealismConfig(Strict):
    """Imperfections of a real camera; all seeded by the source's ``seed``."""

    noise: float = Field(default=4.0, ge=0, le=60, description="Sensor noise, standard deviation in grey levels.")
    jpeg_quality: int | None = Field(
        default=None, ge=1, le=100, description="Recompress each frame at this JPEG quality (artefacts); null: off."
    )
    drift: float = Field(default=0.08, ge=0, le=0.5, description="Slow lighting drift, relative brightness amplitude.")
    drift_period: float = Field(default=120.0, gt=0, le=86400, description="Seconds per lighting drift cycle.")
    jitter: float = Field(default=1.0, ge=0, le=20, description="Pose jitter, whole pixels (standard deviation).")


class OctoPrintApiConfig(Strict):
    """OctoPrint's REST API, where a camera on another machine downloads the job's file from."""

    url: str = Field(description="OctoPrint's base URL, e.g. http://octopi.local")
    api_key: SecretStr = Field(description="An application key or a user's API key (X-Api-Key).")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")


class VirtualSourceConfig(Strict):
    """A rendered camera that sees the part a printer is printing (from its job's G-code file)."""

    type: Literal["virtual"]
    printer: str = Field(description="Node id of the printer's bridge; its job and layer topics are followed.")
    mount: Literal["head", "fixed"] = Field(default="fixed", description="head: on the carriage; fixed: on the frame.")
    files: Path | None = Field(
        default=None, description="Folder the job's file_path is relative to (OctoPrint's uploads folder)."
    )
    octoprint: OctoPrintApiConfig | None = Field(
        default=None, description="Download the job's file from OctoPrint when it is not under files."
    )
    fixed: FixedPoseConfig = FixedPoseConfig()
    head: HeadPoseConfig = HeadPoseConfig()
    fov: float = Field(default=90.0, gt=5, lt=150, description="Horizontal field of view, degrees.")
    bed: tuple[float, float] = Field(default=(200.0, 200.0), description="Bed size [x, y], mm, drawn from 0,0.")
    color: tuple[int, int, int] = Field(default=(235, 120, 40), description="Filament colour [r, g, b].")
    light: Vector = Field(default=(-0.4, -0.7, 0.8), description="Direction towards the light [x, y, z].")
    fps: float = Field(default=10.0, ge=0, le=60, description="Frame rate it emulates; 0 = a frame at once per read.")
    seed: int = Field(default=0, ge=0, description="Seed of noise, drift and jitter.")
    realism: RealismConfig = RealismConfig()
    faults: list[FaultConfig] = Field(default_factory=list, description="Failures drawn from a layer on.")

    @field_validator("printer")
    @classmethod
    def _printer(cls, value: str) -> str:
        if not NODE_ID.match(value):
            raise ValueError(f"invalid node id {value!r}: letters, digits, '_' or '-'")
        return value

    @field_validator("light")
    @classmethod
    def _light(cls, value: Vector) -> Vector:
        if not any(value):
            raise ValueError("the light direction must not be zero")
        return value

    @field_validator("color")
    @classmethod
    def _color(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if not all(0 <= c <= 255 for c in value):
            raise ValueError("colour components are 0-255")
        return value

    @field_validator("bed")
    @classmethod
    def _bed(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(v > 0 for v in value):
            raise ValueError("bed sizes must be > 0")
        return value

    @model_validator(mode="after")
    def _somewhere(self) -> VirtualSourceConfig:
        if self.files is None and self.octoprint is None:
            raise ValueError("set files (OctoPrint's uploads folder) or octoprint (url, api_key)")
        return self
