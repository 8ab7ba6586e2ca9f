"""Camera agent payloads.

Images never travel inside JSON: the JPEG itself is published as raw bytes on its own
topic, and these models carry only the metadata a requester needs to match and verify it
(capture id, topic, size, sha256).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART, Coord, Payload, Timestamp
from printmesh_core.models.envelope import CommandRequest

LABEL_MAX = 200
WIDTH_MAX = 7680
HEIGHT_MAX = 4320


class CaptureRequest(CommandRequest):
    """``<node>/camera/cmd/capture``: grab a frame produced after this request arrived.

    The JPEG goes to ``<node>/camera/<camera>/capture/<capture_id>`` as raw bytes, before
    the response. ``capture_id`` is the request ``id`` when that is a valid topic level
    and file name (letters, digits, ``_``, ``-``, ``.``; at most 64 characters; not starting
    with ``.``), so a requester can subscribe to the image topic before it sends the request;
    any other id gets a stable digest (``id-`` + 20 hex digits).
    """

    camera: str | None = Field(
        default=None, max_length=64, description="Camera name; may be omitted when the agent has exactly one camera."
    )
    label: str | None = Field(
        default=None,
        max_length=LABEL_MAX,
        description="Free text kept with the capture; the synthetic camera draws it onto the frame.",
    )
    width: int | None = Field(
        default=None, ge=16, le=WIDTH_MAX, description="Output width in pixels; alone, the height follows the aspect."
    )
    height: int | None = Field(
        default=None, ge=16, le=HEIGHT_MAX, description="Output height in pixels; alone, the width follows the aspect."
    )
    quality: int | None = Field(default=None, ge=1, le=100, description="JPEG quality; the camera's setting if unset.")


class CameraGeometry(BaseModel):
    """Where a carriage camera sits and how it sees: what lets the coordinator project the G-code into
    its images (the print watch's silhouette). Printer coordinates, mm; angles in degrees."""

    model_config = PART

    offset: list[Coord] = Field(
        min_length=3, max_length=3, description="Camera position relative to the nozzle (x, y, z), mm."
    )
    pitch: float = Field(ge=0, le=89, description="Look-down angle below horizontal; it looks towards the nozzle.")
    fov: float = Field(gt=5, lt=150, description="Horizontal field of view of the delivered image.")


class CaptureResult(Payload):
    """The ``data`` of a successful capture response, and the retained ``<camera>/last_capture``."""

    capture_id: str = Field(description="Last level of the image topic.")
    request_id: str = Field(description="The request's id (``press-...`` for a Home Assistant button press).")
    camera: str
    topic: str = Field(description="Absolute topic the JPEG was published on (raw bytes, QoS 1, not retained).")
    timestamp: Timestamp = Field(description="When the frame was produced or received from the source, Unix seconds.")
    width: int
    height: int
    size: int = Field(ge=0, description="JPEG size in bytes.")
    sha256: str = Field(description="SHA-256 of the JPEG bytes, lowercase hex.")
    quality: int = Field(description="JPEG quality used.")
    label: str | None = None
    sequence: int | None = Field(
        default=None, description="The source's frame number (synthetic counter, file frame index, stream sequence)."
    )
    source: str = Field(description="Which source delivered it, e.g. 'device /dev/video0' or 'url http://...'.")
    geometry: CameraGeometry | None = Field(
        default=None, description="The camera's geometry on the carriage, when configured (a head camera)."
    )


class CamerasRequest(CommandRequest):
    """``<node>/camera/cmd/cameras``: list the configured cameras and their state."""


class CameraInfo(BaseModel):
    model_config = PART

    name: str
    title: str
    source: str = Field(description="Source description (credentials never included).")
    state: Literal["online", "offline"]
    reason: str | None = Field(default=None, description="Why offline.")
    width: int | None = Field(default=None, description="Width of the last frame delivered (after rotation).")
    height: int | None = None
    preview_interval: float = Field(description="Seconds between previews; 0 = off.")
    captures: int = Field(description="Successful captures since start.")
    failures: int = Field(description="Failed captures since start.")
    pending: int = Field(description="Capture requests waiting for this camera right now.")
    preview_topic: str
    capture_topic: str = Field(description="Image topic filter: <node>/camera/<name>/capture/+.")
    press_topic: str


class CamerasResult(Payload):
    """The ``data`` of a ``cameras`` response."""

    cameras: list[CameraInfo]
