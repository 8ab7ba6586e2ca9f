"""The host agent's Home Assistant entities, derived from what the host actually provides."""

from __future__ import annotations

from typing import Any

from printmesh_core.discovery import Entity
from printmesh_core.models.host import HostState
from printmesh_host.config import HostConfig

MIB = 1048576
GIB = 1073741824


def _sensor(object_id: str, name: str, state_topic: str, template: str, expire: int, **opts: Any) -> Entity:
    options = {"state_topic": state_topic, "value_template": template, "expire_after": expire, **opts}
    return Entity("sensor", object_id, name, options)


def mount_id(mount: str) -> str:
    return "root" if mount == "/" else mount.strip("/").replace("/", "_")


def _measure(unit: str, **extra: Any) -> dict[str, Any]:
    return {"unit_of_measurement": unit, "state_class": "measurement", **extra}


def host_entities(state: HostState, topic: str, config: HostConfig) -> list[Entity]:
    """Entities for the metrics present in ``state``; absent metrics get no entity."""
    exp = int(config.interval * 3 + 10)
    diag = {"entity_category": "diagnostic"}
    out: list[Entity] = []
    if state.cpu:
        out.append(_sensor("cpu_usage", "CPU usage", topic, "{{ value_json.cpu.percent }}", exp,
                           json_attributes_topic=topic, json_attributes_template="{{ value_json.cpu | tojson }}",
                           icon="mdi:cpu-64-bit", **_measure("%", suggested_display_precision=1)))  # fmt: skip
    if state.load:
        for key, label in (("load1", "1 min"), ("load5", "5 min"), ("load15", "15 min")):
            out.append(_sensor(f"load_{key[4:]}m", f"Load ({label})", topic, f"{{{{ value_json.load.{key} }}}}", exp,
                               state_class="measurement", icon="mdi:gauge"))  # fmt: skip
    if state.temperature:
        out.append(_sensor("cpu_temperature", "CPU temperature", topic, "{{ value_json.temperature.celsius }}", exp,
                           device_class="temperature", **_measure("°C")))  # fmt: skip
    if state.frequency:
        out.append(_sensor("cpu_frequency", "CPU frequency", topic, "{{ value_json.frequency.current_mhz }}", exp,
                           device_class="frequency", **_measure("MHz", suggested_display_precision=0)))  # fmt: skip
    if state.memory:
        out.append(_sensor("memory_usage", "Memory usage", topic, "{{ value_json.memory.percent }}", exp,
                           icon="mdi:memory", **_measure("%")))  # fmt: skip
        out.append(_sensor("memory_available", "Memory available", topic,
                           f"{{{{ (value_json.memory.available / {MIB}) | round(1) }}}}", exp,
                           device_class="data_size", **_measure("MiB", suggested_display_precision=0)))  # fmt: skip
    if state.swap:
        out.append(_sensor("swap_usage", "Swap usage", topic, "{{ value_json.swap.percent }}", exp,
                           icon="mdi:harddisk", **_measure("%"), **diag))  # fmt: skip
    for mount in (state.storage or {}):
        mid, key = mount_id(mount), f"value_json.storage['{mount}']"
        out.append(_sensor(f"disk_{mid}_usage", f"Disk usage {mount}", topic, f"{{{{ {key}.percent }}}}", exp,
                           icon="mdi:harddisk", **_measure("%")))  # fmt: skip
        out.append(_sensor(f"disk_{mid}_free", f"Disk free {mount}", topic,
                           f"{{{{ ({key}.free / {GIB}) | round(2) }}}}", exp,
                           device_class="data_size", **_measure("GiB", suggested_display_precision=1)))  # fmt: skip
    if state.uptime:
        boot = "{{ (value_json.uptime.boot_time | float) | timestamp_custom('%Y-%m-%dT%H:%M:%S+00:00', false) }}"
        out.append(_sensor("last_boot", "Last boot", topic, boot, exp, device_class="timestamp", **diag))
        out.append(_sensor("uptime", "Uptime", topic, "{{ value_json.uptime.seconds | round(0) }}", exp,
                           device_class="duration", **_measure("s"), **diag))  # fmt: skip
    if state.throttling:
        for key, name in (("under_voltage_now", "Under-voltage"), ("throttled_now", "Throttled")):
            tpl = f"{{{{ 'ON' if value_json.throttling.{key} else 'OFF' }}}}"
            out.append(Entity("binary_sensor", key.removesuffix("_now"), name,
                              {"state_topic": topic, "value_template": tpl, "device_class": "problem",
                               "expire_after": exp, **diag}))  # fmt: skip
    return out


def command_entities(config: HostConfig, topic_for: dict[str, str]) -> list[Entity]:
    """One sensor per configured shell command: stdout as state, the rest as attributes."""
    out = []
    for cmd in config.commands:
        topic = topic_for[cmd.name]
        out.append(Entity("sensor", f"command_{cmd.name}", f"Command {cmd.name}", {
            "state_topic": topic,
            "value_template": "{{ (value_json.stdout | trim)[:255] if value_json.exit_code is not none "
                              "else 'error' }}",
            "json_attributes_topic": topic,
            "json_attributes_template": "{{ {'exit_code': value_json.exit_code, 'timed_out': value_json.timed_out, "
                                        "'truncated': value_json.truncated, 'duration': value_json.duration, "
                                        "'error': value_json.error} | tojson }}",
            "icon": "mdi:console",
            "expire_after": int(cmd.interval * 3 + cmd.timeout + 10),
        }))  # fmt: skip
    return out
