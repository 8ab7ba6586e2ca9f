"""The small interface every source implements, and what they share.

A source knows one thing: how to hand over a frame produced after a given moment. It
never publishes, never retries and never sleeps for backoff; the camera worker does that,
so every source gets the same fault handling and availability reporting.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Image: TypeAlias = NDArray[Any]  # BGR uint8 in practice; OpenCV's stubs type results loosely
else:
    Image: TypeAlias = Any

# pip names of the modules a camera may need, for an error that says what to install
PIP_NAMES = {"cv2": "opencv-python-headless", "numpy": "numpy"}


class SourceError(Exception):
    """The source cannot be opened or stopped delivering; the message says why, for people."""


class MissingDependency(SourceError):
    """A package the source needs is not installed; retrying will not help until it is."""

    @classmethod
    def from_import(cls, exc: ImportError) -> MissingDependency:
        module = (exc.name or "").split(".")[0]
        package = PIP_NAMES.get(module, module or "a required package")
        return cls(f"{package} is not installed (pip install {package}): {exc}")


@dataclass(frozen=True)
class Frame:
    """One decoded frame, BGR, as the sensor delivered it (before rotation, flip and resize)."""

    image: Image
    wall: float  # when it was produced or received, Unix seconds
    sequence: int | None = None  # the source's own frame number, when it has one


@dataclass(frozen=True)
class SizeHint:
    """The size the camera wants before rotation; sources that can choose (device, synthetic) use it."""

    width: int | None
    height: int | None


class Source(ABC):
    """One camera input. Called from its camera's worker thread only, except ``interrupt``."""

    description: str = "source"

    @abstractmethod
    def open(self) -> None:
        """Connect to the input; raise SourceError with the cause if that is impossible."""

    @abstractmethod
    def read(self, after: float, label: str | None = None) -> Frame:
        """A frame produced after ``after`` (``time.monotonic()``), waiting for one if needed.

        ``label`` is the capture request's label: only the synthetic source draws it.
        Raises SourceError when no such frame can be had.
        """

    def check(self) -> None:  # noqa: B027 - optional hook, a no-op unless the source can tell
        """Raise SourceError if the source is already known to be broken (cheap; called every second)."""

    def interrupt(self) -> None:  # noqa: B027 - optional hook
        """Make a read blocked on the network return early (any thread). OpenCV captures cannot be
        released under a running grab() without risking a crash, so the default does nothing."""

    @abstractmethod
    def close(self) -> None:
        """Release the input. Idempotent."""


class Pacer:
    """Frame slots of a source that emulates a camera running at ``fps`` (synthetic, file playback).

    Frame ``k`` is produced at ``start + k / fps``. A read gets the first frame produced at
    or after the request (never one produced before it), at most one frame interval later,
    and never the same frame twice.
    """

    def __init__(self, fps: float, start: float | None = None) -> None:
        self.fps = fps
        self.start = time.monotonic() if start is None else start

    def slot(self, after: float, previous: int) -> tuple[int, float]:
        """(frame number, monotonic time it is due) for a read requested at ``after``."""
        if self.fps <= 0:
            return previous + 1, after
        k = max(previous + 1, math.ceil((after - self.start) * self.fps - 1e-9))
        return k, self.start + k / self.fps

    @staticmethod
    def wait_until(due: float) -> None:
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def wall_from_monotonic(mono: float) -> float:
    """The Unix time of a past ``time.monotonic()`` reading."""
    return time.time() - (time.monotonic() - mono)
