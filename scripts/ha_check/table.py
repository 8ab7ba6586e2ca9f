"""The entities Home Assistant must make from each component's discovery: one table per component.

Every generic check (friendly name, unit, device and state class, diagnostic category, retained
configs, registry, HA's log) is driven by these rows; the scenarios add what is particular to a
component. ``expect`` is free per component: the host's state kind, the sensors' value range.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entity:
    platform: str
    object_id: str  # after <platform>.<node>_ in the entity id, and in the config topic
    name: str  # the original name; HA shows "<node> <name>"
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    diagnostic: bool = False
    optional: bool = False  # checked only if present (psutil reads no CPU frequency on some machines)
    expect: str = ""

    def entity_id(self, node: str) -> str:
        return f"{self.platform}.{node}_{self.object_id}"


@dataclass(frozen=True)
class Component:
    name: str
    entities: tuple[Entity, ...]
    timeout: int = 240  # ha_check's limit for the scenario, seconds

    def ids(self, node: str, *, required_only: bool = False) -> list[str]:
        return [e.entity_id(node) for e in self.entities if not (required_only and e.optional)]

    def by_id(self, node: str) -> dict[str, Entity]:
        return {e.entity_id(node): e for e in self.entities}

    def ha_node(self, node: str) -> str:
        """The discovery node id: the middle of every config topic and the unique ids' prefix."""
        return f"printmesh_{node}_{self.name}"

    def config_topic(self, prefix: str, node: str, e: Entity) -> str:
        return f"{prefix}/{e.platform}/{self.ha_node(node)}/{e.object_id}/config"


M, C, PCT = "measurement", "°C", "%"


def _host() -> tuple[Entity, ...]:
    # expect: num | ts | onoff | text:* (any output) | text:xxx255 (cut to 255) | text:error
    def num(oid: str, name: str, unit: str | None = None, dc: str | None = None, diag: bool = False) -> Entity:
        return Entity("sensor", oid, name, unit, dc, M, diag, expect="num")

    return (
        num("cpu_usage", "CPU usage", PCT),
        num("load_1m", "Load (1 min)"),
        num("load_5m", "Load (5 min)"),
        num("load_15m", "Load (15 min)"),
        num("cpu_temperature", "CPU temperature", C, "temperature"),
        num("memory_usage", "Memory usage", PCT),
        num("memory_available", "Memory available", "MiB", "data_size"),
        num("swap_usage", "Swap usage", PCT, diag=True),
        num("disk_root_usage", "Disk usage /", PCT),
        num("disk_root_free", "Disk free /", "GiB", "data_size"),
        num("disk_tmp_usage", "Disk usage /tmp", PCT),
        num("disk_tmp_free", "Disk free /tmp", "GiB", "data_size"),
        Entity("sensor", "last_boot", "Last boot", None, "timestamp", None, True, expect="ts"),
        num("uptime", "Uptime", "s", "duration", diag=True),
        Entity("binary_sensor", "under_voltage", "Under-voltage", None, "problem", None, True, expect="onoff"),
        Entity("binary_sensor", "throttled", "Throttled", None, "problem", None, True, expect="onoff"),
        Entity("sensor", "command_uptime", "Command uptime", expect="text:*"),
        Entity("sensor", "command_long", "Command long", expect="text:xxx255"),
        Entity("sensor", "command_missing", "Command missing", expect="text:error"),
        Entity("sensor", "cpu_frequency", "CPU frequency", "MHz", "frequency", M, optional=True, expect="num"),
    )


def _sensors() -> tuple[Entity, ...]:
    # expect: the range "lo..hi" the simulated (or fake sysfs) reading must fall in
    rows: list[Entity] = []
    ranges = {
        "enclosure": ("25..37", "25..45", "5..20"),
        "room": ("15..23", "45..65", "5..15"),
        "attic": ("23.4..23.6", "40.9..41.1", "9.4..9.6"),
    }
    for sensor, (t, h, d) in ranges.items():
        title = sensor.capitalize()
        rows += [
            Entity("sensor", f"{sensor}_temperature", f"{title} temperature", C, "temperature", M, expect=t),
            Entity("sensor", f"{sensor}_humidity", f"{title} humidity", PCT, "humidity", M, expect=h),
            Entity("sensor", f"{sensor}_dew_point", f"{title} dew point", C, "temperature", M, expect=d),
            Entity("binary_sensor", f"{sensor}_problem", f"{title} sensor", None, "problem", None, True),
        ]
    return tuple(rows)


def _camera() -> tuple[Entity, ...]:
    rows: list[Entity] = []
    for cam, preview in (("bed", True), ("nozzle", True), ("side", False)):
        title = cam.capitalize()
        if preview:  # no camera entity for a camera with previews off
            rows.append(Entity("camera", cam, title))
        rows += [
            Entity("button", f"{cam}_capture", f"{title} capture"),
            Entity("sensor", f"{cam}_last_capture", f"{title} last capture", None, "timestamp"),
        ]
    return tuple(rows)


def _printer() -> tuple[Entity, ...]:
    def p(platform: str, oid: str, name: str, unit: str | None = None, dc: str | None = None,
          sc: str | None = None) -> Entity:  # fmt: skip
        return Entity(platform, f"printer_{oid}", name, unit, dc, sc)

    heaters = [p("sensor", f"{h}_{k}", f"{t} {k}", C, "temperature", M)
               for h, t in (("tool0", "Tool"), ("bed", "Bed")) for k in ("temperature", "target")]  # fmt: skip
    return (
        *heaters,
        p("sensor", "state", "Printer state"),
        p("sensor", "progress", "Print progress", PCT, None, M),
        p("sensor", "print_time", "Print time", "s", "duration", M),
        p("sensor", "print_time_left", "Print time left", "s", "duration", M),
        p("sensor", "eta", "Print ETA", None, "timestamp"),
        p("sensor", "file", "Print file"),
        p("sensor", "current_layer", "Current layer", None, None, M),
        p("sensor", "total_layers", "Total layers"),
        p("sensor", "current_height", "Current height", "mm", "distance", M),
        p("sensor", "last_layer_duration", "Last layer duration", "s", "duration", M),
        p("sensor", "average_layer_duration", "Average layer duration", "s", "duration", M),
        p("sensor", "fan0_speed", "Fan speed", PCT, None, M),
        Entity("binary_sensor", "printer_connected", "Printer connected", None, "connectivity", None, True),
        p("binary_sensor", "printing", "Printing", None, "running"),
        p("button", "pause", "Pause print"),
        p("button", "resume", "Resume print"),
        p("button", "cancel", "Cancel print"),
    )


def _coordinator() -> tuple[Entity, ...]:
    # one printer, "octo"; expect: what the scenario reads before it publishes anything itself
    return (
        Entity("sensor", "octo_capture_state", "octo capture state", expect="waiting"),
        Entity("sensor", "octo_last_layer", "octo capture last layer", state_class=M, expect="unknown"),  # none yet
        Entity("sensor", "octo_images", "octo capture images", state_class="total", expect="0"),
        Entity("sensor", "octo_failures", "octo capture failures", state_class="total", diagnostic=True, expect="0"),
        Entity("binary_sensor", "octo_print_problem", "octo print problem", device_class="problem", expect="unknown"),
        Entity("sensor", "octo_watch_verdict", "octo watch verdict", expect="unknown"),
    )


COMPONENTS: dict[str, Component] = {
    "host": Component("host", _host()),
    "sensors": Component("sensors", _sensors()),
    "camera": Component("camera", _camera()),
    "printer": Component("printer", _printer(), timeout=400),
    "coordinator": Component("coordinator", _coordinator()),
}
