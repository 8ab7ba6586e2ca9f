"""Plugin settings: OctoPrint's defaults, the versioned migration, and the mapping to core settings.

OctoPrint stores ``plugins.printmesh.*`` in its config.yaml; the plugin turns that into
the same validated settings every printmesh agent uses, so a bad value is reported with
the key's name instead of breaking the bridge later.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field, ValidationError

from printmesh_core.config import AgentSettings, ConfigError, format_validation_error

SETTINGS_VERSION = 1

DEFAULTS: dict[str, Any] = {
    "node_id": "",  # empty: the host name
    "topic_root": "printmesh",
    "mqtt": {
        "host": "localhost",
        "port": 1883,
        "username": "",
        "password": "",
        "protocol": "5",
        "keepalive": 30,
        "tls": {"enabled": False, "ca_file": "", "cert_file": "", "key_file": "", "insecure": False},
    },
    "discovery": {"enabled": True, "prefix": "homeassistant"},
    "events": {"enabled": True, "exclude": ["PositionUpdate"]},
    "allow_cancel": False,
}


class BridgeSettings(AgentSettings):
    """The core's agent settings; the bridge adds nothing yet beyond the event filter."""

    events_enabled: bool = True
    events_exclude: list[str] = Field(default_factory=list)
    allow_cancel: bool = False


def _blank_to_none(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _blank_to_none(v) for k, v in tree.items() if v != ""}
    return tree


def to_bridge_settings(raw: dict[str, Any]) -> BridgeSettings:
    """OctoPrint's settings dict → validated settings; raises ConfigError naming the key."""
    data = _blank_to_none(copy.deepcopy(raw))
    events = data.pop("events", {}) or {}
    data["events_enabled"] = events.get("enabled", True)
    data["events_exclude"] = events.get("exclude", [])
    try:
        return BridgeSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def migrate(settings: dict[str, Any], current: int | None) -> dict[str, Any]:
    """From settings written by an older plugin version to version SETTINGS_VERSION.

    Version None is the skeleton that stored nothing; a flat ``broker_host``/``broker_port``
    pair (an early draft's layout) moves under ``mqtt``.
    """
    migrated = copy.deepcopy(settings)
    if current is None or current < 1:
        mqtt = migrated.setdefault("mqtt", {})
        for old, new in (("broker_host", "host"), ("broker_port", "port")):
            if old in migrated:
                mqtt[new] = migrated.pop(old)
    return migrated
