"""The host agent's Home Assistant entities, derived from what the host actually provides.

Every template is null-safe. The state topic is shared by all entities, and a metric can
vanish from it (a sensor stops answering, a mount disappears, a metric is switched off)
while Home Assistant still has its entity: the agent publishes the state first and removes
the entity afterwards, and after an HA restart the retained state may be older than the
configs. A bare ``value_json.temperature.celsius`` then makes HA log "Template variable
warning/error" on every message. Guarded templates render ``None`` instead, which MQTT
sensors and binary sensors take as "unknown" without a log line. The timestamp sensor
cannot take ``None`` (HA logs "Invalid state message"), so it keeps its current state.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

from printmesh_core.discovery import Entity
from printmesh_core.models.host import HostState
from printmesh_core.topics import ha_id
from printmesh_host.config import HostConfig

MIB = 1048576
GIB = 1073741824
# HA's state strings are at most 255 characters; longer ones are rejected.
MAX_STATE = 255


def _sensor(object_id: str, name: str, state_topic: str, template: str, expire: int, **opts: Any) -> Entity:
    options = {"state_topic": state_topic, "value_template": template, "expire_after": expire, **opts}
    return Entity("sensor", object_id, name, options)


def mount_id(mount: str) -> str:
    return "root" if mount == "/" else mount.strip("/").replace("/", "_")


def _distinct_ids(names: list[str], to_id: Callable[[str], str]) -> dict[str, str]:
    """HA ids per name; names that map to an id already taken get a hash suffix.

    Without this, "/" and "/root", or commands "a.b" and "a_b", would share a unique_id
    and HA would reject the second entity. Names are taken in sorted order, so an id does
    not change when the configuration is reordered.
    """
    ids: dict[str, str] = {}
    for name in sorted(set(names)):
        oid = ha_id(to_id(name))
        if oid in ids.values():
            oid = f"{oid}_{zlib.crc32(name.encode()):08x}"
        ids[name] = oid
    return ids


def _measure(unit: str, **extra: Any) -> dict[str, Any]:
    return {"unit_of_measurement": unit, "state_class": "measurement", **extra}


def _present(path: str) -> str:
    """Jinja test that ``value_json.<path>`` is an object. ``is mapping`` never logs, unlike ``if x``."""
    return f"value_json is mapping and value_json.{path} is mapping"


def _value(path: str, expr: str) -> str:
    """``expr`` (using ``value_json.<path>``) when that part is present, else ``None`` (unknown)."""
    return f"{{{{ {expr} if {_present(path)} else None }}}}"


def _storage(mount: str) -> tuple[str, str]:
    """(guard, accessor) for one mount; json.dumps makes any path a valid Jinja string literal."""
    item = f"value_json.storage[{json.dumps(mount)}]"
    return f"{_present('storage')} and {item} is mapping", item


def host_entities(state: HostState, topic: str, config: HostConfig) -> list[Entity]:
    """Entities for the metrics present in ``state``; absent metrics get no entity."""
    exp = int(config.interval * 3 + 10)
    diag = {"entity_category": "diagnostic"}
    out: list[Entity] = []
    if state.cpu:
        attrs = f"{{{{ value_json.cpu | tojson if {_present('cpu')} else '{{}}' }}}}"
        out.append(_sensor("cpu_usage", "CPU usage", topic, _value("cpu", "value_json.cpu.percent"), exp,
                           json_attributes_topic=topic, json_attributes_template=attrs,
                           icon="mdi:cpu-64-bit", **_measure("%", suggested_display_precision=1)))  # fmt: skip
    if state.load:
        for key, label in (("load1", "1 min"), ("load5", "5 min"), ("load15", "15 min")):
            out.append(_sensor(f"load_{key[4:]}m", f"Load ({label})", topic, _value("load", f"value_json.load.{key}"),
                               exp, state_class="measurement", icon="mdi:gauge"))  # fmt: skip
    if state.temperature:
        out.append(_sensor("cpu_temperature", "CPU temperature", topic,
                           _value("temperature", "value_json.temperature.celsius"), exp,
                           device_class="temperature", **_measure("°C")))  # fmt: skip
    if state.frequency:
        out.append(_sensor("cpu_frequency", "CPU frequency", topic,
                           _value("frequency", "value_json.frequency.current_mhz"), exp,
                           device_class="frequency", **_measure("MHz", suggested_display_precision=0)))  # fmt: skip
    if state.memory:
        out.append(_sensor("memory_usage", "Memory usage", topic, _value("memory", "value_json.memory.percent"), exp,
                           icon="mdi:memory", **_measure("%")))  # fmt: skip
        out.append(_sensor("memory_available", "Memory available", topic,
                           _value("memory", f"(value_json.memory.available / {MIB}) | round(1)"), exp,
                           device_class="data_size", **_measure("MiB", suggested_display_precision=0)))  # fmt: skip
    if state.swap:
        out.append(_sensor("swap_usage", "Swap usage", topic, _value("swap", "value_json.swap.percent"), exp,
                           icon="mdi:harddisk", **_measure("%"), **diag))  # fmt: skip
    mids = _distinct_ids([*config.mounts, *(state.storage or {})], mount_id)
    for mount in state.storage or {}:
        mid, (ok, item) = mids[mount], _storage(mount)
        out.append(_sensor(f"disk_{mid}_usage", f"Disk usage {mount}", topic,
                           f"{{{{ {item}.percent if {ok} else None }}}}", exp,
                           icon="mdi:harddisk", **_measure("%")))  # fmt: skip
        out.append(_sensor(f"disk_{mid}_free", f"Disk free {mount}", topic,
                           f"{{{{ ({item}.free / {GIB}) | round(2) if {ok} else None }}}}", exp,
                           device_class="data_size", **_measure("GiB", suggested_display_precision=1)))  # fmt: skip
    if state.uptime:
        # ISO 8601 in UTC. Without uptime: the current state if it is a timestamp, since
        # a timestamp sensor logs a warning for anything else, "None" included.
        boot = ("{% if " + _present("uptime") + " %}"
                "{{ (value_json.uptime.boot_time | float) | timestamp_custom('%Y-%m-%dT%H:%M:%S+00:00', false) }}"
                "{% elif this.state | as_datetime is not none %}{{ this.state }}"
                "{% else %}None{% endif %}")  # fmt: skip
        out.append(_sensor("last_boot", "Last boot", topic, boot, exp, device_class="timestamp", **diag))
        out.append(_sensor("uptime", "Uptime", topic, _value("uptime", "value_json.uptime.seconds | round(0)"), exp,
                           device_class="duration", **_measure("s"), **diag))  # fmt: skip
    if state.throttling:
        for key, name in (("under_voltage_now", "Under-voltage"), ("throttled_now", "Throttled")):
            tpl = _value("throttling", f"('ON' if value_json.throttling.{key} else 'OFF')")
            out.append(Entity("binary_sensor", key.removesuffix("_now"), name,
                              {"state_topic": topic, "value_template": tpl, "device_class": "problem",
                               "expire_after": exp, **diag}))  # fmt: skip
    return out


def command_entities(config: HostConfig, topic_for: dict[str, str]) -> list[Entity]:
    """One sensor per configured shell command: stdout as state, the rest as attributes.

    The state is stdout, trimmed and cut to HA's 255-character limit, or ``error`` when
    the command did not run to completion (``exit_code`` null).
    """
    out = []
    oids = _distinct_ids([c.name for c in config.commands], lambda name: f"command_{name}")
    for cmd in config.commands:
        topic = topic_for[cmd.name]
        out.append(Entity("sensor", oids[cmd.name], f"Command {cmd.name}", {
            "state_topic": topic,
            "value_template": f"{{{{ (value_json.stdout | trim)[:{MAX_STATE}] if value_json.exit_code is not none "
                              "else 'error' }}",
            "json_attributes_topic": topic,
            "json_attributes_template": "{{ {'exit_code': value_json.exit_code, 'timed_out': value_json.timed_out, "
                                        "'truncated': value_json.truncated, 'duration': value_json.duration, "
                                        "'error': value_json.error} | tojson }}",
            "icon": "mdi:console",
            "expire_after": int(cmd.interval * 3 + cmd.timeout + 10),
        }))  # fmt: skip
    return out
