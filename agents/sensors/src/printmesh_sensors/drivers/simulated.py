"""A simulated DHT sensor: deterministic from a seed, so a test can replay exactly what it did.

Every attempt draws the same number of random numbers in the same order, so attempt
number N is the same whatever happened before it (retries, ``read`` commands). It
produces a slowly drifting true value plus noise, and injects:

* failures, raised as the same ``RuntimeError`` messages adafruit-circuitpython-dht
  raises and classified by the same code as the real driver;
* spikes: a frame whose checksum passed but with one high bit flipped, so one value is
  off by 12.8, 25.6 or 51.2. Real DHT22s do this; the filters must reject every one.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from printmesh_core.config import Strict
from printmesh_sensors.drivers.base import Driver, Model, RawReading, SensorBase, normalise_model
from printmesh_sensors.drivers.dht import classify_dht_error

# What adafruit-circuitpython-dht 4.x raises, word for word.
LIBRARY_MESSAGES = {
    "checksum": "Checksum did not validate. Try again.",
    "timeout": "A full buffer was not returned. Try again.",
    "not_found": "DHT sensor not found, check wiring",
    "implausible": "Received unplausible data. Try again.",
}
SPIKES = (12.8, 25.6, 51.2)
PULL_BACK = 0.98  # the drift walk is pulled towards the base values, so it stays plausible for days


class FailureMix(Strict):
    """Relative weights of the injected failure kinds."""

    checksum: float = Field(default=0.5, ge=0)
    timeout: float = Field(default=0.3, ge=0, description="'A full buffer was not returned'.")
    not_found: float = Field(default=0.1, ge=0, description="'DHT sensor not found, check wiring'.")
    implausible: float = Field(default=0.1, ge=0, description="'Received unplausible data' (humidity > 100).")

    @model_validator(mode="after")
    def _some(self) -> FailureMix:
        if self.checksum + self.timeout + self.not_found + self.implausible <= 0:
            raise ValueError("at least one failure weight must be > 0")
        return self


class SimulatedSensor(SensorBase):
    driver: Literal["simulated"] = Field(description="A simulated DHT sensor (no hardware).")
    model: Model = Field(default="DHT22", description="Sets the plausible range.")
    seed: int = Field(default=0, description="Same seed, same sequence.")
    temperature: float = Field(default=22.0, ge=-40, le=80, description="Base temperature, °C.")
    humidity: float = Field(default=45.0, ge=0, le=100, description="Base relative humidity, %.")
    drift: float = Field(default=0.02, ge=0, le=10, description="Step of the slow random walk per read (°C, %RH).")
    noise: float = Field(default=0.1, ge=0, le=10, description="Standard deviation of per-read noise (°C, %RH).")
    failure_rate: float = Field(default=0.0, ge=0, le=1, description="Probability that a read attempt fails.")
    failures: FailureMix = FailureMix()
    spike_rate: float = Field(default=0.0, ge=0, le=1, description="Probability of a bit-flipped value (not raised).")

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        return normalise_model(value)

    def build(self) -> Driver:
        return SimulatedDriver(self)


@dataclass(frozen=True)
class Step:
    """One simulated attempt: the truth, and what the sensor reported (an error or a value)."""

    truth: RawReading
    error: str | None  # a key of LIBRARY_MESSAGES
    reported: RawReading | None  # None when error; differs from truth when spiked

    @property
    def spiked(self) -> bool:
        return self.reported is not None and self.reported != self.truth


class SimulatedDriver(Driver):
    def __init__(self, config: SimulatedSensor) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._walk = [0.0, 0.0]
        self.injected: Counter[str] = Counter()  # error kinds, and "spike"
        self._humidity_step = 1.0 if config.model == "DHT11" else 0.1  # DHT11s report whole %RH

    def step(self) -> Step:
        c, r = self.config, self._rng
        self._walk = [w * PULL_BACK + r.gauss(0.0, c.drift) for w in self._walk]
        t_noise, h_noise = r.gauss(0.0, c.noise), r.gauss(0.0, c.noise)
        u_fail, u_kind, u_spike, u_which, u_size, u_sign = (r.random() for _ in range(6))
        humidity = min(100.0, max(0.0, c.humidity + self._walk[1] + h_noise))
        humidity = round(round(humidity / self._humidity_step) * self._humidity_step, 1)
        truth = RawReading(round(c.temperature + self._walk[0] + t_noise, 1), humidity)
        if u_fail < c.failure_rate:
            return Step(truth, self._pick_failure(u_kind), None)
        if u_spike < c.spike_rate:
            delta = SPIKES[min(int(u_size * len(SPIKES)), len(SPIKES) - 1)] * (1 if u_sign < 0.5 else -1)
            if u_which < 0.5:
                return Step(truth, None, RawReading(round(truth.temperature + delta, 1), truth.humidity))
            return Step(truth, None, RawReading(truth.temperature, round(truth.humidity + delta, 1)))
        return Step(truth, None, truth)

    def _pick_failure(self, u: float) -> str:
        weights = self.config.failures.model_dump()
        total = sum(weights.values())
        acc = 0.0
        for kind, weight in weights.items():
            acc += weight / total
            if u < acc and weight > 0:
                return kind
        return next(k for k, w in reversed(weights.items()) if w > 0)

    def read(self) -> RawReading:
        step = self.step()
        if step.error is not None:
            self.injected[step.error] += 1
            raise classify_dht_error(RuntimeError(LIBRARY_MESSAGES[step.error]))
        if step.spiked:
            self.injected["spike"] += 1
        assert step.reported is not None
        return step.reported
