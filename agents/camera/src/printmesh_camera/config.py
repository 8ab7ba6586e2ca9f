"""Camera agent settings (the ``camera:`` section).

The source of each camera is a discriminated union on ``source.type``, so a typo in a
source's keys is reported against that source type, and ``--check`` validates everything
without importing OpenCV.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Discriminator, Field, SecretStr, Tag, field_validator, model_validator

from printmesh_camera.virtual_config import VirtualSourceConfig
from printmesh_core import contract
from printmesh_core.config import AgentSettings, Strict, check_unique
from printmesh_core.models.camera import CameraGeometry

CAMERA_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# Levels the camera component uses itself right below <node>/camera/.
RESERVED_NAMES = contract.COMPONENT_LEVELS


class DeviceSourceConfig(Strict):
    """A V4L2 camera (USB webcam, Pi camera through the V4L2 driver)."""

    type: Literal["device"]
    device: int | str = Field(description="V4L2 index (0) or device path (/dev/video0, /dev/v4l/by-id/...).")
    fps: float | None = Field(default=None, gt=0, le=240, description="Frame rate asked of the driver.")
    fourcc: str | None = Field(
        default="MJPG", description="Pixel format asked of the driver; MJPG allows high resolutions over USB 2."
    )
    buffer_size: int = Field(
        default=1, ge=1, le=32, description="Driver buffers (CAP_PROP_BUFFERSIZE) where supported."
    )
    drain: int = Field(default=8, ge=0, le=64, description="Most buffered frames thrown away before a fresh one.")

    @field_validator("device")
    @classmethod
    def _device(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a V4L2 index must be >= 0")
            return value
        if value.isdigit():
            return int(value)
        if not value.startswith("/"):
            raise ValueError(f"use an index or an absolute device path, not {value!r}")
        return value

    @field_validator("fourcc")
    @classmethod
    def _fourcc(cls, value: str | None) -> str | None:
        if value is not None and value != "" and len(value) != 4:
            raise ValueError("a FOURCC has exactly 4 characters, e.g. MJPG or YUYV")
        return value or None


class UrlSourceConfig(Strict):
    """An MJPEG stream or a JPEG snapshot over HTTP(S): mjpg-streamer, ustreamer, OctoPrint's webcam."""

    type: Literal["url"]
    url: str = Field(description="http:// or https:// URL; user:password@ in it is moved to username/password.")
    mode: Literal["auto", "mjpeg", "snapshot"] = Field(
        default="auto", description="auto: decided by the Content-Type the server answers with."
    )
    username: str | None = Field(default=None, description="HTTP basic auth user.")
    password: SecretStr | None = Field(default=None, description="HTTP basic auth password.")
    timeout: float = Field(default=5.0, ge=0.5, le=120, description="Connect and read timeout, seconds.")
    stall_timeout: float = Field(
        default=5.0, ge=0.5, le=600, description="MJPEG: no frame for this long means the stream stopped delivering."
    )

    @model_validator(mode="before")
    @classmethod
    def _split_credentials(cls, data: object) -> object:
        """Credentials inside the URL would be printed by --check and logged; keep them as a secret instead."""
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        parts = urlsplit(data["url"])
        if parts.username is None and parts.password is None:
            return data
        data = dict(data)
        data.setdefault("username", unquote(parts.username or ""))
        if parts.password is not None:
            data.setdefault("password", unquote(parts.password))
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        data["url"] = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        return data

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
        return value


class FileSourceConfig(Strict):
    """A video file played in a loop, as if it were a live camera."""

    type: Literal["file"]
    path: Path = Field(description="Any file OpenCV's FFmpeg backend can read (AVI/MJPG, MP4, MKV...).")
    fps: float | None = Field(default=None, gt=0, le=240, description="Playback rate; the file's own when unset.")
    realtime: bool = Field(
        default=True,
        description="Follow the wall clock (a capture gets the frame for 'now'); false: the next frame per read.",
    )


class SyntheticSourceConfig(Strict):
    """Generated frames (test pattern, time, counter, label); no hardware needed."""

    type: Literal["synthetic"]
    fps: float = Field(default=15.0, ge=0, le=240, description="Frame rate it emulates; 0 = a frame at once per read.")
    offline_flag: Path | None = Field(
        default=None, description="While this file exists the camera behaves as unplugged (for testing fault handling)."
    )


SOURCE_TYPES = ("device", "url", "file", "synthetic", "virtual")


def _source_type(value: Any) -> str | None:
    """The tag of a source; None (an error naming the valid types) when missing or unknown."""
    tag = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return tag if tag in SOURCE_TYPES else None


SourceConfig = Annotated[
    Annotated[DeviceSourceConfig, Tag("device")]
    | Annotated[UrlSourceConfig, Tag("url")]
    | Annotated[FileSourceConfig, Tag("file")]
    | Annotated[SyntheticSourceConfig, Tag("synthetic")]
    | Annotated[VirtualSourceConfig, Tag("virtual")],
    Discriminator(
        _source_type,
        custom_error_type="source_type",
        custom_error_message=f"type must be one of: {', '.join(SOURCE_TYPES)}",
    ),
]


class PreviewConfig(Strict):
    interval: float = Field(default=5.0, ge=0, le=86400, description="Seconds between previews; 0 = off.")
    width: int = Field(default=640, ge=16, le=3840, description="Preview width in pixels (height keeps the aspect).")
    quality: int = Field(default=70, ge=1, le=100, description="Preview JPEG quality.")

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float) -> float:
        if 0 < value < 0.05:
            raise ValueError("use 0 (off) or at least 0.05 s")
        return value


class BackoffConfig(Strict):
    min_delay: float = Field(default=1.0, ge=0.1, le=300, description="First reopen delay, seconds.")
    max_delay: float = Field(default=30.0, ge=0.1, le=3600, description="Reopen delay ceiling, seconds.")

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.max_delay < self.min_delay:
            raise ValueError("max_delay must be >= min_delay")
        return self


class CameraConfig(Strict):
    name: str = Field(description="Topic level and entity id part: lowercase letters, digits, '_' and '-'.")
    title: str | None = Field(default=None, max_length=64, description="Display name in Home Assistant.")
    source: SourceConfig
    width: int | None = Field(default=None, ge=16, le=7680, description="Capture width after rotation.")
    height: int | None = Field(default=None, ge=16, le=4320, description="Capture height after rotation.")
    quality: int = Field(default=85, ge=1, le=100, description="JPEG quality of captures.")
    rotation: Literal[0, 90, 180, 270] = Field(default=0, description="Clockwise degrees, applied before flip.")
    flip: Literal["none", "horizontal", "vertical"] = "none"
    warmup: float | None = Field(
        default=None, ge=0, le=120, description="Seconds of frames thrown away after opening; 2 for devices, else 0."
    )
    preview: PreviewConfig = PreviewConfig()
    reopen: BackoffConfig = BackoffConfig()
    max_pending: int = Field(default=16, ge=1, le=1000, description="Queued capture requests; more are refused.")
    health_interval: float = Field(
        default=30.0, ge=0, le=86400, description="When idle (no preview), read a frame this often to notice faults."
    )
    geometry: CameraGeometry | None = Field(
        default=None,
        description="A carriage camera's offset from the nozzle, pitch and field of view (of the delivered image):"
        " sent with each capture, so the print watch can project the G-code into it. A virtual head camera"
        " has its own.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CAMERA_NAME.match(value):
            raise ValueError(
                f"invalid camera name {value!r}: 1-32 lowercase letters, digits, '_' or '-', starting with a letter "
                "or digit"
            )
        if value in RESERVED_NAMES:
            raise ValueError(f"camera name {value!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})")
        return value

    @property
    def display(self) -> str:
        return self.title or self.name

    @property
    def effective_geometry(self) -> CameraGeometry | None:
        """The configured geometry, else a virtual head camera's own (unless rotated or flipped: then unknown)."""
        if self.geometry is not None:
            return self.geometry
        src = self.source
        if src.type != "virtual" or src.mount != "head" or self.rotation or self.flip != "none":
            return None
        return CameraGeometry(offset=src.head.offset, pitch=src.head.pitch, fov=src.fov)

    @property
    def effective_warmup(self) -> float:
        if self.warmup is not None:
            return self.warmup
        return 2.0 if self.source.type == "device" else 0.0


class CameraSection(Strict):
    cameras: list[CameraConfig] = Field(default_factory=list, description="Each runs on its own thread.")

    @field_validator("cameras")
    @classmethod
    def _unique(cls, value: list[CameraConfig]) -> list[CameraConfig]:
        check_unique([c.name for c in value], "camera")
        return value


class CameraSettings(AgentSettings):
    camera: CameraSection = CameraSection()
