"""DHT11, DHT22/AM2302 and DHT21/AM2301 on a GPIO pin, through adafruit-circuitpython-dht.

Two traps of that library shape this driver:

* ``measure()`` talks to the sensor at most once every 2 s. Inside that window the
  ``temperature`` and ``humidity`` properties silently return the previous values, and
  after a failed read those are the *last good* ones (or ``None`` before any). A retry
  sooner than 2 s would publish an old value as new. So ``min_spacing`` is 2.1 s and the
  runner never starts two reads closer than that; ``None`` is a failure, never a value.
* Every failure is a bare ``RuntimeError``; its message is the only clue to the cause.

The library is imported in ``open()``, not at module level, so a machine without it (or
a test without a Raspberry Pi) runs the other drivers; a missing library is reported as
the sensor's error, with the install hint, and the agent keeps running.
"""

from __future__ import annotations

import importlib
import logging
import re
from typing import Any, Literal

from pydantic import Field, field_validator

from printmesh_core.models.sensors import ErrorKind
from printmesh_sensors.drivers.base import Driver, Model, RawReading, ReadError, SensorBase, normalise_model

log = logging.getLogger("printmesh.sensors.dht")

# Raspberry Pi BCM numbering on the 40-pin header, as Blinka's `board` names them (board.D4).
MAX_PIN = 27
_PIN = re.compile(r"^(?:D|GPIO|BCM)?(\d{1,2})$", re.IGNORECASE)
LIBRARY_CLASSES = {"DHT11": "DHT11", "DHT22": "DHT22", "AM2302": "DHT22", "DHT21": "DHT21", "AM2301": "DHT21"}
INSTALL_HINT = "pip install 'printmesh-sensors[dht]'"
# Blinka imports a GPIO library that its package does not declare: gpiod (libgpiod's
# bindings) on a Raspberry Pi, RPi.GPIO or lgpio on some other boards.
GPIO_PACKAGES = {"gpiod": "gpiod", "RPi": "RPi.GPIO", "lgpio": "lgpio"}
# (text in the library's RuntimeError, kind), first match wins. The messages of
# adafruit-circuitpython-dht 4.x: "Checksum did not validate. Try again.", "A full buffer
# was not returned. Try again.", "DHT sensor not found, check wiring", "Received
# unplausible data. Try again.", and Blinka's pulseio "Timed out waiting for PulseIn message".
_MESSAGE_KINDS: tuple[tuple[str, ErrorKind], ...] = (
    ("checksum", "checksum"),
    ("full buffer", "timeout"),
    ("timed out", "timeout"),
    ("not found", "not_found"),
    ("check wiring", "not_found"),
    ("unplausible", "implausible"),
    ("implausible", "implausible"),
)


def classify_dht_error(exc: RuntimeError) -> ReadError:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    kind: ErrorKind = next((k for needle, k in _MESSAGE_KINDS if needle in lowered), "other")
    return ReadError(kind, text)


def normalise_pin(value: Any) -> str:
    """4, "4", "GPIO4", "gpio4", "BCM4" and "D4" all mean board.D4."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else None
    match = _PIN.match(text) if text is not None else None
    if match is None or int(match.group(1)) > MAX_PIN:
        raise ValueError(
            f"invalid pin {value!r}: use a Raspberry Pi GPIO number D0-D{MAX_PIN} (BCM numbering), e.g. D4 or 4"
        )
    return f"D{int(match.group(1))}"


class DhtSensor(SensorBase):
    driver: Literal["dht"] = Field(description="A DHT sensor on a GPIO pin (adafruit-circuitpython-dht).")
    model: Model = Field(description="DHT11, DHT22, AM2302 (= DHT22), DHT21 or AM2301 (= DHT21).")
    pin: str = Field(description="GPIO pin, BCM numbering: D4, GPIO4 or 4.")
    use_pulseio: bool = Field(
        default=False,
        description="Use Blinka's pulseio helper process instead of bit-banging (off: the helper is fragile on a Pi).",
    )
    interval: float = Field(default=10.0, ge=2.0, le=86400, description="Seconds between read cycles; at least 2.")

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return normalise_model(value)

    @field_validator("pin", mode="before")
    @classmethod
    def _pin(cls, value: Any) -> str:
        return normalise_pin(value)

    def build(self) -> Driver:
        return DhtDriver(self.model, self.pin, self.use_pulseio)

    def hardware_key(self) -> Any:
        return ("gpio", self.pin)


class DhtDriver(Driver):
    min_spacing = 2.1  # the library's own window is 2 s; a bit more, so every read is fresh

    def __init__(self, model: str, pin: str, use_pulseio: bool) -> None:
        self.model = model
        self.pin = pin
        self.use_pulseio = use_pulseio
        self._device: Any = None

    def open(self) -> None:
        try:
            board = importlib.import_module("board")
            adafruit_dht = importlib.import_module("adafruit_dht")
        except ImportError as exc:
            missing = (exc.name or "adafruit_dht").split(".")[0]
            hint = f"pip install {GPIO_PACKAGES[missing]}" if missing in GPIO_PACKAGES else INSTALL_HINT
            raise ReadError("other", f"cannot import {missing}: {exc}; install it with {hint}") from exc
        except Exception as exc:  # Blinka raises NotImplementedError etc. on boards it does not know
            raise ReadError("other", f"cannot load the GPIO library: {type(exc).__name__}: {exc}") from exc
        pin = getattr(board, self.pin, None)
        if pin is None:
            raise ReadError("not_found", f"this board has no pin {self.pin}")
        device_class = getattr(adafruit_dht, LIBRARY_CLASSES[self.model])
        self._device = device_class(pin, use_pulseio=self.use_pulseio)
        log.info("opened %s on %s (%s)", self.model, self.pin, "pulseio" if self.use_pulseio else "bit-banged")

    def read(self) -> RawReading:
        if self._device is None:
            self.open()
        try:
            # The first property measures; the second returns that same measurement.
            temperature = self._device.temperature
            humidity = self._device.humidity
        except RuntimeError as exc:
            raise classify_dht_error(exc) from exc
        if temperature is None or humidity is None:
            raise ReadError("other", "the library returned no value")
        return RawReading(float(temperature), float(humidity))

    def close(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        try:
            device.exit()  # releases the pin (and pulseio's helper process)
        except Exception as exc:
            log.warning("releasing %s failed: %s: %s", self.pin, type(exc).__name__, exc)
