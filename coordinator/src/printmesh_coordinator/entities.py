"""Home Assistant entities: per printer, what the coordinator is doing and has captured.

All of them read the retained ``<coord>/coordinator/<printer>/state`` message, with
null-safe templates (an unreadable message makes the entity unknown, not a log line),
and the last capture's metadata rides along as attributes of the last-layer sensor.
The print watch's two entities read ``<coord>/coordinator/<printer>/watch``. Its verdict is
text, and a text sensor shows the word "None" for a ``None`` (HA 2024.3): a message that is
not a verdict renders ``unknown`` instead, which is HA's own unknown state. The last layer is
numeric (``state_class: measurement``, like the bridge's current layer), so ``None`` is unknown.
"""

from __future__ import annotations

from printmesh_core.discovery import DIAGNOSTIC, Entity
from printmesh_core.topics import ha_id

ATTRIBUTES = "{{ value_json | tojson if value_json is mapping else '{}' }}"


def _field(name: str, test: str) -> str:
    return f"{{{{ value_json.{name} if value_json is mapping and value_json.{name} is {test} else None }}}}"


def printer_entities(printer: str, state_topic: str, capture_topic: str, watch_topic: str) -> list[Entity]:
    """The topics are absolute. The print watch's two entities read ``watch_topic`` (docs/watch.md)."""
    oid = ha_id(printer)
    label = f"{printer} capture"
    return [
        Entity("sensor", f"{oid}_capture_state", f"{label} state",
               {"state_topic": state_topic, "value_template": _field("phase", "string"), "icon": "mdi:camera-burst",
                "json_attributes_topic": state_topic, "json_attributes_template": ATTRIBUTES}),
        Entity("sensor", f"{oid}_last_layer", f"{label} last layer",
               {"state_topic": state_topic, "value_template": _field("last_layer", "number"), "icon": "mdi:layers",
                "state_class": "measurement",
                "json_attributes_topic": capture_topic, "json_attributes_template": ATTRIBUTES}),
        Entity("sensor", f"{oid}_images", f"{label} images",
               {"state_topic": state_topic, "value_template": _field("images", "number"), "state_class": "total",
                "icon": "mdi:image-multiple"}),
        Entity("sensor", f"{oid}_failures", f"{label} failures",
               {"state_topic": state_topic, "value_template": _field("failures", "number"), "state_class": "total",
                "icon": "mdi:alert-circle-outline", **DIAGNOSTIC}),
        Entity("binary_sensor", f"{oid}_print_problem", f"{printer} print problem",
               {"state_topic": watch_topic, "device_class": "problem",
                "value_template": "{{ ('ON' if value_json.problem else 'OFF') if value_json is mapping "
                                  "and value_json.problem is boolean else None }}",
                "json_attributes_topic": watch_topic, "json_attributes_template": ATTRIBUTES}),
        Entity("sensor", f"{oid}_watch_verdict", f"{printer} watch verdict",
               {"state_topic": watch_topic, "icon": "mdi:eye-check",
                "value_template": "{{ value_json.verdict if value_json is mapping and value_json.verdict is string "
                                  "else 'unknown' }}",
                "json_attributes_topic": watch_topic, "json_attributes_template": ATTRIBUTES}),
    ]  # fmt: skip
