"""DHT11/DHT22 through the kernel's ``dht11`` IIO driver (``dtoverlay=dht11,gpiopin=4``).

The kernel does the timing-critical bit-banging with interrupts, which a Python process
on a busy Pi cannot, so this is the most reliable way to read a DHT sensor on Linux. It
exposes milli-units in sysfs: ``in_temp_input`` = 23500 means 23.5 °C and
``in_humidityrelative_input`` = 41000 means 41 %RH. Reading the first file measures,
and the kernel keeps that measurement for 2 s, so the second file returns the same
measurement. Reads fail often, with EIO (bad checksum or undecodable pulses) or
ETIMEDOUT (too few edges: the sensor did not answer fully); those become errors of
kind ``io`` and ``timeout``, never a value.

The base path is configurable so tests (and unusual kernels) can point it elsewhere.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from printmesh_sensors.drivers.base import Driver, Model, RawReading, ReadError, SensorBase, classify, normalise_model

DEFAULT_BASE = Path("/sys/bus/iio/devices")
TEMPERATURE_FILE = "in_temp_input"
HUMIDITY_FILE = "in_humidityrelative_input"
KERNEL_DRIVER = "dht11"  # the IIO device's `name` is "dht11" or "dht11@<n>", for DHT22s too
_DEVICE_DIR = re.compile(r"^iio:device\d+$")
OVERLAY_HINT = "is the overlay loaded? /boot/firmware/config.txt: dtoverlay=dht11,gpiopin=4"


class IioSensor(SensorBase):
    driver: Literal["linux-iio"] = Field(description="The kernel's dht11 IIO driver, read from sysfs.")
    model: Model = Field(description="DHT11, DHT22, AM2302, DHT21 or AM2301: sets the plausible range.")
    device: str | None = Field(
        default=None,
        description="'iio:deviceN', or the device's name (e.g. 'dht11@4'); default: the only dht11 device.",
    )
    base_path: Path = Field(default=DEFAULT_BASE, description="Where the IIO devices are listed.")
    interval: float = Field(default=10.0, ge=2.0, le=86400, description="Seconds between read cycles; at least 2.")

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return normalise_model(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or value in (".", "..")):
            raise ValueError(f"invalid device {value!r}: use 'iio:deviceN' or the device's name")
        return value

    def build(self) -> Driver:
        return IioDriver(self.base_path, self.device)

    def hardware_key(self) -> Any:
        return ("iio", str(self.base_path), self.device)


def _describe(exc: OSError, path: Path) -> str:
    code = errno.errorcode.get(exc.errno or 0, "")
    what = exc.strerror or str(exc)
    return f"{path.name}: {what} ({code})" if code else f"{path.name}: {what}"


class IioDriver(Driver):
    min_spacing = 2.0  # the kernel keeps a measurement for 2 s; DHT22s need 2 s between reads

    def __init__(self, base: Path, device: str | None) -> None:
        self.base = base
        self.device = device
        self._dir: Path | None = None

    def _resolve(self) -> Path:
        if not self.base.is_dir():
            raise ReadError("not_found", f"{self.base} does not exist ({OVERLAY_HINT})")
        if self.device is not None and _DEVICE_DIR.match(self.device):
            path = self.base / self.device
            if not (path / TEMPERATURE_FILE).exists():
                raise ReadError("not_found", f"{path} has no {TEMPERATURE_FILE}")
            return path
        found = [d for d in sorted(self.base.iterdir()) if self._wanted(d)]
        what = f"named {self.device!r}" if self.device else f"of the {KERNEL_DRIVER} driver"
        if not found:
            raise ReadError("not_found", f"no IIO device {what} in {self.base} ({OVERLAY_HINT})")
        if len(found) > 1:
            names = ", ".join(d.name for d in found)
            raise ReadError("other", f"several IIO devices {what} ({names}): set `device`")
        return found[0]

    def _wanted(self, path: Path) -> bool:
        try:
            name = (path / "name").read_text().strip()
        except OSError:
            return False
        if self.device is not None:
            return name == self.device
        return name == KERNEL_DRIVER or name.startswith(KERNEL_DRIVER + "@")

    @staticmethod
    def _milli(path: Path) -> float:
        try:
            text = path.read_text().strip()
        except OSError as exc:
            error = classify(exc)
            raise ReadError(error.kind, _describe(exc, path)) from exc
        try:
            return int(text) / 1000.0
        except ValueError:
            raise ReadError("other", f"{path.name}: not an integer: {text[:40]!r}") from None

    def read(self) -> RawReading:
        path = self._dir or self._resolve()
        try:
            temperature = self._milli(path / TEMPERATURE_FILE)
            humidity = self._milli(path / HUMIDITY_FILE)
        except ReadError as exc:
            if exc.kind == "not_found":
                self._dir = None  # the device went away (overlay removed, renumbered): look again next time
            raise
        self._dir = path
        return RawReading(temperature, humidity)
