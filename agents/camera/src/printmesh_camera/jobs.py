"""What passes between the agent and a camera worker: the job, the publishing sink, the backoff.

Kept apart from the worker so the agent, the worker and the tests share these small types
without importing the worker's thread machinery, and without importing OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from printmesh_camera.sources import MissingDependency
from printmesh_core.models.camera import CaptureRequest, CaptureResult
from printmesh_core.models.envelope import CommandResponse


@dataclass(frozen=True)
class CaptureJob:
    request: CaptureRequest
    capture_id: str
    received: float  # time.monotonic() when the request arrived: the frame must be newer
    reply: Callable[[CommandResponse], None]
    correlation_data: bytes | None = None


class Sink(Protocol):
    """What a worker publishes; the agent implements it on MQTT, tests can record it."""

    def image(self, camera: str, capture_id: str, jpeg: bytes, correlation_data: bytes | None) -> str:
        """Publish a capture's JPEG; return the absolute topic it went to."""

    def preview(self, camera: str, jpeg: bytes) -> None: ...

    def availability(self, camera: str, online: bool, reason: str | None) -> None: ...

    def captured(self, result: CaptureResult) -> None: ...


class Backoff:
    """Exponential reopen delays: min_delay, doubled per failed attempt, capped at max_delay."""

    def __init__(self, min_delay: float, max_delay: float) -> None:
        self.min_delay, self.max_delay, self.attempts = min_delay, max_delay, 0

    def next(self) -> float:
        delay = min(self.max_delay, self.min_delay * 2.0 ** min(self.attempts, 30))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


def load_imaging() -> ModuleType:
    """The frame-processing module, imported on first use: OpenCV is needed only by running cameras."""
    try:
        from printmesh_camera import imaging
    except ImportError as exc:
        raise MissingDependency.from_import(exc) from None
    return imaging
