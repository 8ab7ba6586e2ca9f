"""The small interface every driver implements, and the settings every sensor shares.

A driver only turns hardware (or a simulation) into one raw reading in °C and %RH, or
raises. Everything that decides whether a value may be published (ranges, jumps, the
median, retries, availability) lives outside the drivers, in one place, so a new driver
cannot forget a safety rule. Vendor libraries are imported inside ``open()``, never at
module level: a machine without them still runs every other driver.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from printmesh_core import contract
from printmesh_core.config import Strict
from printmesh_core.models.sensors import ErrorKind
from printmesh_core.topics import TopicError, check_name

Model = Literal["DHT11", "DHT22", "AM2302", "DHT21", "AM2301"]
# Datasheet measuring ranges: (°C min, °C max), (%RH min, %RH max). The AM2302 is a DHT22
# in a case with a resistor, the AM2301 a DHT21; both speak the DHT22 protocol.
MODEL_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "DHT11": ((0.0, 50.0), (20.0, 90.0)),
    "DHT22": ((-40.0, 80.0), (0.0, 100.0)),
    "AM2302": ((-40.0, 80.0), (0.0, 100.0)),
    "DHT21": ((-40.0, 80.0), (0.0, 100.0)),
    "AM2301": ((-40.0, 80.0), (0.0, 100.0)),
}
# Topic levels next to the sensors' own subtrees; a sensor named "cmd" would turn its
# state topic into a command topic.
RESERVED_NAMES = contract.COMPONENT_LEVELS | {route.levels[-1] for route in contract.SENSOR_RETAINED}


class ReadError(Exception):
    """A failed read, already classified. ``message`` keeps the driver's own words."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: ErrorKind = kind
        self.message = message


@dataclass(frozen=True)
class RawReading:
    temperature: float  # °C
    humidity: float  # %RH


class Driver(ABC):
    """One sensor's hardware access. Not thread-safe: the runner serialises every call."""

    #: Seconds the hardware needs between the starts of two reads; the runner never reads sooner.
    min_spacing: float = 0.0

    def open(self) -> None:  # noqa: B027 - optional hook, most drivers open lazily in read()
        """Acquire the hardware; called before the first read and again after ``close()``."""

    @abstractmethod
    def read(self) -> RawReading:
        """One measurement. Raise ``ReadError`` (or anything: the runner classifies it)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the hardware (a GPIO line, a helper process). Called once at shutdown."""


_ERRNO_KINDS: dict[int, ErrorKind] = {
    errno.ETIMEDOUT: "timeout",
    errno.ENOENT: "not_found",
    errno.ENODEV: "not_found",
    errno.ENXIO: "not_found",
}


def classify(exc: BaseException) -> ReadError:
    """Whatever a driver raised, as a ``ReadError``: OSErrors by errno, the rest as 'other'."""
    if isinstance(exc, ReadError):
        return exc
    if isinstance(exc, OSError):
        kind = _ERRNO_KINDS.get(exc.errno or 0, "io")
        return ReadError(kind, exc.strerror or str(exc) or type(exc).__name__)
    text = str(exc)
    return ReadError("other", f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


# ------------------------------------------------------------------ shared settings
class Retry(Strict):
    """Retries inside one read cycle; they never run into the next cycle."""

    attempts: int = Field(default=3, ge=1, le=10, description="Read attempts per cycle, the first included.")
    delay: float = Field(
        default=0.5, ge=0.05, le=60, description="Seconds before the first retry, never less than the driver needs."
    )
    factor: float = Field(default=2.0, ge=1.0, le=10.0, description="Each further retry waits this much longer.")


class Jump(Strict):
    """Reject a reading that jumps away from the last accepted one (a corrupted frame)."""

    temperature: float | None = Field(default=5.0, gt=0, description="Largest step in °C; null turns it off.")
    humidity: float | None = Field(default=10.0, gt=0, description="Largest step in %RH; null turns it off.")
    confirm: int = Field(
        default=3,
        ge=2,
        le=20,
        description="This many rejected readings in a row that agree with each other are a real change: accepted.",
    )


class Limits(Strict):
    """Plausible range; defaults to the model's datasheet range."""

    temperature: tuple[float, float] | None = Field(default=None, description="[min, max] in °C.")
    humidity: tuple[float, float] | None = Field(default=None, description="[min, max] in %RH.")

    @field_validator("temperature", "humidity")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] >= value[1]:
            raise ValueError(f"[min, max] needs min < max (got {list(value)})")
        return value


class Filters(Strict):
    jump: Jump = Jump()
    median: int = Field(default=1, ge=1, le=15, description="Publish the median of the last N good readings; 1: off.")
    limits: Limits = Limits()


class SensorBase(Strict):
    """What every sensor has, whatever its driver. Drivers subclass it with ``driver: Literal[...]``."""

    name: str = Field(max_length=64, description="Topic level: <node>/sensors/<name>/...; unique.")
    location: str = Field(default="", max_length=64, description="Free-text label, e.g. 'enclosure'; default: name.")
    interval: float = Field(default=10.0, ge=0.1, le=86400, description="Seconds between read cycles.")
    unavailable_after: float | None = Field(
        default=None,
        ge=0.1,
        le=604800,
        description="Seconds without a good read before the sensor is unavailable; default max(3 × interval, 30).",
    )
    retry: Retry = Retry()
    filters: Filters = Filters()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            check_name(value, "sensor name")
        except TopicError as exc:
            raise ValueError(str(exc)) from None
        if value.lower() in RESERVED_NAMES:
            raise ValueError(f"sensor name {value!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> SensorBase:
        if not self.location.strip():
            self.location = self.name
        if self.unavailable_after is not None and self.unavailable_after < self.interval:
            raise ValueError(f"unavailable_after ({self.unavailable_after:g}) must be >= interval ({self.interval:g})")
        return self

    # -------------------------------------------------------------- derived
    @property
    def driver_name(self) -> str:
        return str(getattr(self, "driver", "unknown"))

    @property
    def model_name(self) -> str:
        return str(getattr(self, "model", "DHT22"))

    @property
    def grace(self) -> float:
        """Seconds without a good read before the sensor is unavailable."""
        return self.unavailable_after if self.unavailable_after is not None else max(3 * self.interval, 30.0)

    @property
    def temperature_range(self) -> tuple[float, float]:
        return self.filters.limits.temperature or MODEL_RANGES[self.model_name][0]

    @property
    def humidity_range(self) -> tuple[float, float]:
        return self.filters.limits.humidity or MODEL_RANGES[self.model_name][1]

    def build(self) -> Driver:
        """The driver for this sensor (vendor libraries are not imported yet)."""
        raise NotImplementedError  # abstract: each driver's config subclass (dht, linux-iio, simulated) overrides it

    def hardware_key(self) -> Any:
        """Two sensors with the same key would fight over one device; None: no such resource."""
        return None


def normalise_model(value: Any) -> Any:
    """'dht22' -> 'DHT22', so the config is case-insensitive like the datasheets' naming."""
    return value.upper().replace("-", "") if isinstance(value, str) else value
