"""Plugin settings: OctoPrint's defaults, the versioned migration, and the mapping to core settings.

OctoPrint stores ``plugins.printmesh.*`` in its config.yaml; the plugin turns that into
the same validated settings every printmesh agent uses, so a bad value is reported with
the key's name instead of breaking the bridge later.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from octoprint_printmesh.dashboard.layout import DEFAULT_WIDGETS
from octoprint_printmesh.hold.limits import MAX_FEEDRATE, MIN_FEEDRATE
from octoprint_printmesh.hold.safety import SafetySettings
from octoprint_printmesh.hold.types import HoldConfig
from printmesh_core import contract
from printmesh_core.config import AgentSettings, ConfigError, Strict, format_validation_error
from printmesh_core.secretfiles import SecretFileError, read_secret_files
from printmesh_core.topics import TopicError, check_node_id

SETTINGS_VERSION = 2
_CODE = re.compile(r"^[GMT][0-9]{1,4}(\.[0-9])?$")

DEFAULTS: dict[str, Any] = {
    "node_id": "",  # empty: the host name
    "topic_root": "printmesh",
    "mqtt": {
        "host": "localhost",
        "port": 1883,
        "hosts": [],  # a broker cluster instead of host: ["nats1:1883", ...], failed over in order
        "max_subscribe_qos": 2,  # 0 on NATS (docs/farm.md)
        "anonymous": False,  # a broker on another machine without an account: only on purpose
        "username": "",
        "password": "",
        "password_file": "",  # instead of password: a file holding it (0600), e.g. printmesh broker-config's
        "protocol": "5",
        "keepalive": 30,
        "tls": {
            "enabled": False,
            "ca_file": "",
            "cert_file": "",
            "key_file": "",
            "key_password": "",
            "key_password_file": "",
            "insecure": False,
        },
    },
    "discovery": {"enabled": True, "prefix": "homeassistant"},
    # PositionUpdate answers every M114 (a hold's own); ZChange fires on every z-hop, twice per travel
    # on a z-hop profile, and printer/layer tells the layer exactly: both are noise on the event stream
    "events": {"enabled": True, "exclude": ["PositionUpdate", "ZChange"]},
    "publish": {"temperature_threshold": 0.5, "temperature_interval": 30, "job_interval": 5, "layer_interval": 0.25},
    "commands": {
        "allow_hold": True,
        "allow_move": True,
        "allow_cancel": False,
        "allow_gcode": False,
        "gcode_allow": ["M117", "M118", "M300"],
        # Node ids of the coordinators whose hold, move and release this printer obeys (docs/security.md).
        # Empty: whoever the broker's ACL lets write the command topics, and any holder a hold names.
        "trusted_holders": [],
    },
    "safety": {"margin": 5.0, "max_z": 0, "clearance": 2.0, "min_feedrate": 60, "max_feedrate": 12000},
    "gcode": {"flavour": "auto", "marks": True},
    "hold": {"max_hold": 300, "confirm_timeout": 30, "move_timeout": 60, "return_timeout": 60},
    "dashboard": {"widgets": DEFAULT_WIDGETS},  # the tab's layout (dashboard/layout.py), saved from the tab
}
_PERMISSIONS = ("allow_hold", "allow_move", "allow_cancel", "allow_gcode", "gcode_allow", "trusted_holders")
# Secrets only OctoPrint admins see in the settings API (and so in the settings dialog).
RESTRICTED = (("mqtt", "password"), ("mqtt", "tls", "key_password"))


class PublishConfig(Strict):
    temperature_threshold: float = Field(default=0.5, ge=0, le=50, description="°C change worth a message.")
    temperature_interval: float = Field(default=30, gt=0, le=3600, description="s: republish temperatures anyway.")
    job_interval: float = Field(default=5, gt=0, le=3600, description="s between job messages while printing.")
    layer_interval: float = Field(
        default=0.25, ge=0, le=5,
        description="s: a layer starting sooner after the last printer/layer sent waits at most this long and goes "
        "out with the others that waited (each its own message, in order); 0 sends each at once.",
    )  # fmt: skip


class Permissions(Strict):
    """Which commands the plugin accepts; motion is always checked against the volume."""

    allow_hold: bool = True
    allow_move: bool = True
    allow_cancel: bool = False
    allow_gcode: bool = False
    gcode_allow: list[str] = Field(default_factory=lambda: ["M117", "M118", "M300"])
    trusted_holders: list[str] = Field(
        default_factory=list,
        description="Node ids of the coordinators allowed to hold this printer; empty: any the broker lets command.",
    )

    @property
    def holders(self) -> tuple[str, ...]:
        """The trusted holders as a hold names them: '<node_id>/coordinator'."""
        return tuple(f"{node}/{contract.COORDINATOR}" for node in self.trusted_holders)

    @field_validator("trusted_holders")
    @classmethod
    def _nodes(cls, value: list[str]) -> list[str]:
        nodes = [node.strip() for node in value if node.strip()]
        for node in nodes:
            try:
                check_node_id(node)
            except TopicError as exc:
                raise ValueError(f"{node!r}: {exc}") from None
        return list(dict.fromkeys(nodes))

    @field_validator("gcode_allow")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        codes = [code.strip().upper() for code in value]
        for code in codes:
            if not _CODE.match(code):
                raise ValueError(f"{code!r} is not a G/M/T code such as 'M117'")
        return codes


class SafetyConfig(Strict):
    margin: float = Field(default=5.0, ge=0, le=100, description="mm kept from the XY edges of the volume.")
    max_z: float = Field(default=0, ge=0, le=2000, description="Highest Z a move may reach, mm; 0: the volume's top.")
    clearance: float = Field(default=2.0, ge=0.2, le=50, description="mm the nozzle stays above the printed layer.")
    min_feedrate: float = Field(
        default=MIN_FEEDRATE, ge=1, le=6000, description="mm/min: a slower move is refused, the hold's own are raised."
    )
    max_feedrate: float = Field(
        default=MAX_FEEDRATE, ge=60, le=100_000, description="mm/min: a faster move is refused, the hold's own capped."
    )

    @model_validator(mode="after")
    def _ordered(self) -> SafetyConfig:
        if self.min_feedrate > self.max_feedrate:
            raise ValueError(f"min_feedrate {self.min_feedrate:g} is above max_feedrate {self.max_feedrate:g}")
        return self


class HoldTimes(Strict):
    max_hold: float = Field(default=300, ge=5, le=3600, description="Watchdog: s from a hold until its release.")
    confirm_timeout: float = Field(default=30, ge=1, le=600, description="s for the printer to drain at a hold.")
    move_timeout: float = Field(default=60, ge=1, le=600, description="s for one move to be confirmed.")
    return_timeout: float = Field(default=60, ge=1, le=600, description="s for the head's way back.")


class GcodeConfig(Strict):
    flavour: Literal["auto", "marlin", "klipper", "prusa"] = Field(
        default="auto", description="What G90/G91 do to the extruder; auto: from the firmware's M115 report."
    )
    marks: bool = Field(
        default=True,
        description="Write '@printmesh' layer marks into G-code files as they are uploaded (never sent to the"
        " printer): a marked print is followed with no per-line hook on OctoPrint's comm thread.",
    )


class BridgeSettings(AgentSettings):
    """The core's agent settings plus what only the bridge has."""

    events_enabled: bool = True
    events_exclude: list[str] = Field(default_factory=list)
    publish: PublishConfig = PublishConfig()
    permissions: Permissions = Permissions()
    safety: SafetyConfig = SafetyConfig()
    hold: HoldTimes = HoldTimes()
    gcode: GcodeConfig = GcodeConfig()

    @property
    def allow_cancel(self) -> bool:
        return self.permissions.allow_cancel

    def hold_config(self, session: str) -> HoldConfig:
        c = self.safety
        safety = SafetySettings(
            margin=c.margin, max_z=c.max_z or None, clearance=c.clearance,
            min_feedrate=c.min_feedrate, max_feedrate=c.max_feedrate,
        )  # fmt: skip
        h = self.hold
        return HoldConfig(session, h.confirm_timeout, h.max_hold, h.move_timeout, h.return_timeout, safety)


def _blank_to_none(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _blank_to_none(v) for k, v in tree.items() if v != ""}
    return tree


def to_bridge_settings(raw: dict[str, Any]) -> BridgeSettings:
    """OctoPrint's settings dict → validated settings; raises ConfigError naming the key."""
    data = _blank_to_none(copy.deepcopy(raw))
    data.pop("dashboard", None)  # the tab's layout: the page's, validated by dashboard/layout.py
    data.pop("_config_version", None)  # OctoPrint's own: written after the first start's migration
    events = data.pop("events", {}) or {}
    data["events_enabled"] = events.get("enabled", True)
    data["events_exclude"] = events.get("exclude", [])
    mqtt = data.get("mqtt") or {}
    if mqtt.get("hosts") and mqtt.get("host") == DEFAULTS["mqtt"]["host"]:
        mqtt.pop("host")  # OctoPrint merges the defaults in: only a host set on purpose conflicts with hosts
    commands = data.setdefault("commands", {}) or {}
    data["permissions"] = {key: commands.pop(key) for key in _PERMISSIONS if key in commands}
    try:
        return BridgeSettings.model_validate(read_secret_files(BridgeSettings, data))
    except SecretFileError as exc:
        raise ConfigError(str(exc)) from None
    except ValidationError as exc:
        # the permissions live under 'commands' in OctoPrint's settings: name them as the user wrote them
        raise ConfigError(format_validation_error(exc).replace("permissions.", "commands.")) from None


def migrate(settings: dict[str, Any], current: int | None) -> dict[str, Any]:
    """From settings written by an older plugin version to version SETTINGS_VERSION.

    Version None is the skeleton that stored nothing; a flat ``broker_host``/``broker_port``
    pair (an early draft's layout) moves under ``mqtt``. Version 1 kept ``allow_cancel`` at
    the top; version 2 groups every command permission under ``commands``.
    """
    migrated = copy.deepcopy(settings)
    if current is None or current < 1:
        mqtt = migrated.setdefault("mqtt", {})
        for old, new in (("broker_host", "host"), ("broker_port", "port")):
            if old in migrated:
                mqtt[new] = migrated.pop(old)
    if (current is None or current < 2) and "allow_cancel" in migrated:
        migrated.setdefault("commands", {})["allow_cancel"] = migrated.pop("allow_cancel")
    return migrated
