"""Home Assistant entities: per sensor a temperature, humidity and dew point sensor and a problem binary_sensor.

The measurements require both the agent's status and the sensor's own availability
(``availability_mode: all``), so a dead sensor turns its values unavailable while the
agent runs on. The problem binary_sensor deliberately has only the agent's status: it
must stay available to say "problem" exactly when the values are not.

Every template is null-safe and unit-safe: a payload that is not JSON, lacks a field, or
was published in the other unit (a retained reading from before the unit was changed)
renders ``None``, which HA takes as "unknown" without logging a template warning.
``expire_after`` follows the interval: a measurement expires a little later than the
sensor's own unavailability (so the configured time governs), the problem sensor after
three missed health updates.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from printmesh_core.discovery import Entity
from printmesh_core.topics import ha_id
from printmesh_sensors.drivers.base import SensorBase

_GUARD = "{% set v = value_json if value_json is mapping else {} %}"


@dataclass(frozen=True)
class SensorTopics:
    """Absolute topics of one sensor."""

    state: str
    health: str
    availability: str


def object_ids(names: list[str]) -> dict[str, str]:
    """HA object id prefix per sensor name; "a.b" and "a_b" would collide, so the later gets a hash."""
    ids: dict[str, str] = {}
    for name in sorted(names):
        oid = ha_id(name).lower()
        if oid in ids.values():
            oid = f"{oid}_{zlib.crc32(name.encode()):08x}"
        ids[name] = oid
    return ids


def label(name: str, node_id: str) -> str:
    """'enclosure_top' -> 'Enclosure top'; never starting with the device (node) name."""
    text = name.replace("_", " ").replace("-", " ").strip()
    if text.lower().startswith(node_id.lower()):
        text = text[len(node_id) :].strip(" .")
    return text[:1].upper() + text[1:]


def _named(prefix: str, what: str) -> str:
    return f"{prefix} {what}" if prefix else what[:1].upper() + what[1:]


def _number(field: str, unit_check: str | None = None) -> str:
    test = f"v.{field} is number" + (f" and v.unit == '{unit_check}'" if unit_check else "")
    return f"{_GUARD}{{{{ v.{field} if {test} else None }}}}"


def sensor_entities(sensor: SensorBase, unit: str, oid: str, node_id: str, topics: SensorTopics) -> list[Entity]:
    symbol = "°F" if unit == "F" else "°C"
    prefix = label(sensor.name, node_id)
    measure_expiry = math.ceil(sensor.grace + sensor.interval + 10)
    health_expiry = math.ceil(3 * sensor.interval + 10)
    both = (topics.availability,)

    def measurement(key: str, what: str, value: str, **options: object) -> Entity:
        config = {"state_topic": topics.state, "value_template": value, "expire_after": measure_expiry,
                  "state_class": "measurement", **options}  # fmt: skip
        return Entity("sensor", f"{oid}_{key}", _named(prefix, what), config, extra_availability=both)

    return [
        measurement("temperature", "temperature", _number("temperature", symbol), device_class="temperature",
                    unit_of_measurement=symbol, suggested_display_precision=1),
        measurement("humidity", "humidity", _number("humidity"), device_class="humidity", unit_of_measurement="%",
                    suggested_display_precision=0 if sensor.model_name == "DHT11" else 1),
        measurement("dew_point", "dew point", _number("dew_point", symbol), device_class="temperature",
                    unit_of_measurement=symbol, suggested_display_precision=1, icon="mdi:thermometer-water"),
        Entity("binary_sensor", f"{oid}_problem", _named(prefix, "sensor"), {
            "state_topic": topics.health,
            "value_template": f"{_GUARD}{{{{ ('ON' if v.status == 'unavailable' else 'OFF') "
                              "if v.status is string else None }}",
            "json_attributes_topic": topics.health,
            "json_attributes_template": "{{ value_json | tojson if value_json is mapping else '{}' }}",
            "device_class": "problem",
            "entity_category": "diagnostic",
            "expire_after": health_expiry,
        }),
    ]  # fmt: skip
