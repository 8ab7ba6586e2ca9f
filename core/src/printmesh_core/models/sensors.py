"""Sensor agent payloads: readings, health and the ``read`` command.

A reading and its health travel on separate topics on purpose. ``<name>/state`` carries
only good readings, so its ``ts`` is the time of the measurement and Home Assistant's
``expire_after`` means what it says. A failed read changes ``<name>/health`` and never
the values: peers that republished the last value (or a 0/-1 sentinel) on failure hid
dead sensors, and an enclosure heater overheated behind a frozen reading.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART, Payload, Timestamp
from printmesh_core.models.envelope import CommandRequest

ErrorKind = Literal["checksum", "timeout", "not_found", "implausible", "io", "other"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("checksum", "timeout", "not_found", "implausible", "io", "other")
TemperatureUnit = Literal["°C", "°F"]
SensorStatus = Literal["starting", "ok", "failing", "unavailable"]


class _Part(BaseModel):
    model_config = PART


class SensorReading(Payload):
    """Retained on ``<node>/sensors/<name>/state`` after every good read, and nothing else."""

    sensor: str = Field(description="The sensor's name from the config (a topic level).")
    location: str = Field(description="Free-text location label, e.g. 'enclosure' or 'room'.")
    temperature: float = Field(description="In `unit`, rounded to 0.1.")
    humidity: float = Field(description="Relative humidity, %, rounded to 0.1.")
    dew_point: float | None = Field(
        description="In `unit` (Magnus formula over water); null when humidity is 0 (no dew point exists)."
    )
    unit: TemperatureUnit = Field(description="Unit of temperature and dew_point.")
    samples: int = Field(ge=1, description="Readings the median filter combined (1 when it is off).")
    driver: str = Field(description="dht, linux-iio or simulated.")
    model: str = Field(description="Sensor model: DHT11, DHT22, AM2302, DHT21, AM2301.")


class ErrorCounts(_Part):
    """Failed read attempts since the agent started, by kind."""

    checksum: int = Field(default=0, description="Data arrived but its checksum did not match.")
    timeout: int = Field(default=0, description="Too few bits arrived ('full buffer not returned', ETIMEDOUT).")
    not_found: int = Field(default=0, description="No answer at all ('sensor not found, check wiring', no device).")
    implausible: int = Field(default=0, description="Outside the model's range, or a jump over the configured step.")
    io: int = Field(default=0, description="An operating-system I/O error (EIO from the kernel driver, ...).")
    other: int = Field(default=0, description="Anything else the driver raised (missing library, bugs).")

    @property
    def total(self) -> int:
        return self.checksum + self.timeout + self.not_found + self.implausible + self.io + self.other


class LastError(_Part):
    kind: ErrorKind
    message: str = Field(description="The driver's own words, e.g. 'Checksum did not validate. Try again.'")
    at: Timestamp = Field(description="Unix seconds.")


class SensorHealth(Payload):
    """Retained on ``<node>/sensors/<name>/health`` after every read cycle (good or not)."""

    sensor: str
    location: str
    status: SensorStatus = Field(
        description="starting: no good read yet; ok: no failed attempt since the last good read; failing: "
        "attempts failed since then, but within unavailable_after; unavailable: no good read for longer than that."
    )
    last_good_read: Timestamp | None = Field(description="Unix seconds of the last good read; null before the first.")
    consecutive_failures: int = Field(ge=0, description="Failed attempts (retries included) since the last good read.")
    failing_since: Timestamp | None = Field(
        description="Unix seconds of the first failed attempt of the current streak."
    )
    reads: int = Field(ge=0, description="Good reads since the agent started.")
    attempts: int = Field(ge=0, description="Read attempts since the agent started, good or not.")
    errors: ErrorCounts = Field(default_factory=ErrorCounts)
    last_error: LastError | None = None


class ReadRequest(CommandRequest):
    """``<node>/sensors/cmd/read``: read one sensor now; answers with the reading or the error."""

    sensor: str = Field(min_length=1, max_length=64, description="The sensor's name from the config.")
