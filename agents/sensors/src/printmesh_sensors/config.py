"""Sensor agent settings (the ``sensors:`` section).

Each sensor's options depend on its driver, so a sensor is a union discriminated by
``driver:``: an unknown driver, a bad pin, an unknown model or an option of another
driver stop start-up with exit status 2 and a line naming the key, instead of a sensor
that silently never reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidatorFunctionWrapHandler, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from printmesh_core.config import AgentSettings, Strict
from printmesh_sensors.drivers.dht import DhtSensor
from printmesh_sensors.drivers.linux_iio import IioSensor
from printmesh_sensors.drivers.simulated import SimulatedSensor

SensorConfig = Annotated[DhtSensor | IioSensor | SimulatedSensor, Field(discriminator="driver")]
DRIVERS = ("dht", "linux-iio", "simulated")
_UNITS = {"°c": "C", "c": "C", "celsius": "C", "°f": "F", "f": "F", "fahrenheit": "F"}


def _check_drivers(items: list[Any]) -> None:
    """Name ``sensors.N.driver`` itself when it is missing or unknown (pydantic would name the item)."""
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if "driver" not in item:
            error = PydanticCustomError("missing", f"every sensor needs a driver: {', '.join(DRIVERS)}")
            problems.append(InitErrorDetails(type=error, loc=(i, "driver"), input=item))
        elif item["driver"] not in DRIVERS:
            error = PydanticCustomError("unknown_driver", f"unknown driver: use {', '.join(DRIVERS)}")
            problems.append(InitErrorDetails(type=error, loc=(i, "driver"), input=item["driver"]))
    if problems:
        raise ValidationError.from_exception_data("sensors", problems)


class SensorsConfig(Strict):
    temperature_unit: Literal["C", "F"] = Field(
        default="C", description="Unit of temperature and dew point: C (°C) or F (°F). Filters stay in °C."
    )
    sensors: list[SensorConfig] = Field(default_factory=list, description="The sensors this agent reads.")

    @field_validator("temperature_unit", mode="before")
    @classmethod
    def _unit(cls, value: Any) -> Any:
        return _UNITS.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("sensors", mode="wrap")
    @classmethod
    def _drivers(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, list):
            _check_drivers(value)
        return handler(value)

    @field_validator("sensors")
    @classmethod
    def _distinct(cls, value: list[SensorConfig]) -> list[SensorConfig]:
        seen: dict[str, str] = {}
        for sensor in value:
            key = sensor.name.lower()  # Home Assistant entity ids are lower case
            if key in seen:
                raise ValueError(f"duplicate sensor name {sensor.name!r} (names must differ, ignoring case)")
            seen[key] = sensor.name
        owners: dict[Any, str] = {}
        for sensor in value:
            hw = sensor.hardware_key()
            if hw is None:
                continue
            if hw in owners:
                raise ValueError(f"sensors {owners[hw]!r} and {sensor.name!r} use the same {hw[0]} device {hw[-1]}")
            owners[hw] = sensor.name
        return value


class SensorsSettings(AgentSettings):
    sensors: SensorsConfig = SensorsConfig()
