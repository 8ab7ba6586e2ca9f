"""The printer's Home Assistant entities, built from the retained topics the bridge publishes.

Pure: the bridge hands the result to the core's ``DiscoveryPublisher`` (which adds the
device, the unique ids and the availability on ``<node>/printer/status``, announces on
every connect and on HA's birth message, and clears configs that are no longer wanted).

Object ids all start with ``printer_``: one HA device collects every component of a
node, and a DHT sensor called ``chamber`` on the same node would otherwise share the
entity id ``sensor.<node>_chamber_temperature`` with the printer's chamber.

Templates are null-safe (see the host agent's entities): a value OctoPrint lacks, a
heater the printer does not report, or a message that is not JSON renders ``None``,
which HA takes as "unknown" without a log line. Two sensors cannot take ``None`` in HA
2024.3 without a warning: the ETA (a timestamp sensor rejects anything that is not a
date) and the job file (a text sensor would show the word "None"). Both therefore follow
a second availability topic, the job, and are unavailable while OctoPrint has no ETA or
no file selected.

Buttons publish straight to ``<node>/printer/cmd/<name>``. Their ``command_template``
renders a fresh request id at every press (``ha-<name>-<time>-<random>``): a constant
``payload_press`` would be swallowed as a repeated id by the command server after the
first press. Each button is also available only while its command can succeed: pause
while printing, resume while paused, cancel (only offered with ``allow_cancel``) while
printing or paused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from printmesh_core import contract
from printmesh_core.contract import CommandRoute, Route
from printmesh_core.discovery import AVAILABLE, DIAGNOSTIC, NOT_AVAILABLE, Entity
from printmesh_core.models.printer import PrinterProfile, PrinterTemperatures
from printmesh_core.topics import ComponentTopics, Topics

STATUS_TEMPLATE = "{{ value_json.state }}"
# Shown only while the ETA sensor is unavailable (no ETA): a timestamp sensor needs a date.
NO_ETA = "1970-01-01T00:00:00+00:00"
# The whole printer state (flags, error text, on_hold, current Z) as the state sensor's attributes.
ATTRIBUTES_TEMPLATE = "{{ value_json | tojson if value_json is mapping else '{}' }}"
MAX_TOOLS = 16


@dataclass(frozen=True)
class PrinterShape:
    """What the printer has, as far as HA's entity set is concerned."""

    tools: tuple[str, ...] = ("tool0",)
    bed: bool = True
    chamber: bool = False
    fans: tuple[str, ...] = ("0",)


def _tool_order(key: str) -> int:
    return int(key[4:])


def printer_shape(
    profile: PrinterProfile | None,
    temperatures: PrinterTemperatures | None = None,
    fans: Iterable[str | int] = (),
) -> PrinterShape:
    """The profile's extruders, bed and chamber, plus any heater the printer reports.

    Fan 0 (the part-cooling fan) always has an entity; other fans get one once a
    M106/M107 for them was sent (``fans`` are the indices seen so far).
    """
    count = profile.extruder_count if profile is not None else 1
    tools = {f"tool{i}" for i in range(min(count, MAX_TOOLS))}
    if temperatures is not None:
        tools |= {k for k in temperatures.tools if k.startswith("tool") and k[4:].isdigit()}
    bed = (profile is None or profile.heated_bed) or (temperatures is not None and temperatures.bed is not None)
    chamber = (profile is not None and profile.heated_chamber) or (
        temperatures is not None and temperatures.chamber is not None
    )
    fan_ids = {"0", *(str(f) for f in fans)}
    return PrinterShape(
        tools=tuple(sorted(tools, key=_tool_order)[:MAX_TOOLS]),
        bed=bed,
        chamber=chamber,
        fans=tuple(sorted(fan_ids, key=lambda f: (len(f), f))),
    )


# ------------------------------------------------------------------ templates
def _ref(*keys: str) -> str:
    """``value_json["a"]["b"]``; json.dumps makes any key a valid Jinja string literal."""
    return "value_json" + "".join(f"[{json.dumps(k)}]" for k in keys)


def _guard(keys: tuple[str, ...], test: str) -> str:
    """Each level a mapping, the leaf passes ``test``. ``is`` tests never log, unlike ``if x``."""
    conds = ["value_json is mapping"]
    conds += [f"{_ref(*keys[:i])} is mapping" for i in range(1, len(keys))]
    conds.append(f"{_ref(*keys)} is {test}")
    return " and ".join(conds)


def value_template(*keys: str, test: str = "number", expr: str = "", fallback: str = "None") -> str:
    """The value at ``keys`` (``expr`` appended, e.g. a filter) if present, else ``fallback``."""
    return f"{{{{ {_ref(*keys)}{expr} if {_guard(keys, test)} else {fallback} }}}}"


def flag_template(flag: str) -> str:
    """``ON``/``OFF`` from ``flags.<flag>`` of the printer state, else ``None`` (unknown)."""
    return f"{{{{ ('ON' if {_ref('flags', flag)} else 'OFF') if {_guard(('flags', flag), 'boolean')} else None }}}}"


def flags_availability(*flags: str) -> str:
    """``online`` while any of ``flags`` is true in the printer state."""
    anyof = " or ".join(f"{_ref('flags', f)} is sameas true" for f in flags)
    cond = f"value_json is mapping and {_ref('flags')} is mapping and ({anyof})"
    return f"{{{{ '{AVAILABLE}' if {cond} else '{NOT_AVAILABLE}' }}}}"


def present_availability(key: str) -> str:
    """``online`` while the job's ``key`` is a (non-null) string."""
    return f"{{{{ '{AVAILABLE}' if {_guard((key,), 'string')} else '{NOT_AVAILABLE}' }}}}"


def press_template(command: str) -> str:
    """A request with a new id at every press: time to the microsecond plus a random number."""
    return f'{{"id": "ha-{command}-{{{{ now().timestamp() }}}}-{{{{ range(10000) | random }}}}"}}'


def _availability(status: str, topic: str, template: str) -> list[dict[str, str]]:
    """The component's status (as the core builds it), and one more topic that must say online."""
    return [{"topic": status, "value_template": STATUS_TEMPLATE}, {"topic": topic, "value_template": template}]


# ------------------------------------------------------------------ entities
def _measure(unit: str, device_class: str | None = None, precision: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"unit_of_measurement": unit, "state_class": "measurement"}
    if device_class:
        out["device_class"] = device_class
    if precision is not None:
        out["suggested_display_precision"] = precision
    return out


def _heater_names(shape: PrinterShape) -> list[tuple[tuple[str, ...], str, str]]:
    """(path in the temperature payload, object id part, display name) per heater."""
    heaters: list[tuple[tuple[str, ...], str, str]] = []
    for tool in shape.tools:
        label = "Tool" if len(shape.tools) == 1 else f"Tool {_tool_order(tool)}"
        heaters.append((("tools", tool), tool, label))
    if shape.bed:
        heaters.append((("bed",), "bed", "Bed"))
    if shape.chamber:
        heaters.append((("chamber",), "chamber", "Chamber"))
    return heaters


def printer_entities(topics: Topics, me: ComponentTopics, shape: PrinterShape, *, allow_cancel: bool) -> list[Entity]:
    """Every entity of the printer component; ``me`` is ``topics.component("printer")``."""

    def topic(route: Route[Any]) -> str:
        return topics.absolute(route.topic(me))

    status, temperature = topic(contract.STATUS), topic(contract.PRINTER_TEMPERATURE)
    state, job, fans = topic(contract.PRINTER_STATE), topic(contract.PRINTER_JOB), topic(contract.PRINTER_FANS)
    layers = topic(contract.PRINTER_LAYER_PROGRESS)
    out: list[Entity] = []

    def while_in_job(key: str) -> list[dict[str, str]]:
        return _availability(status, job, present_availability(key))

    def sensor(oid: str, name: str, state_topic: str, template: str, **options: Any) -> None:
        out.append(Entity("sensor", f"printer_{oid}", name, {"state_topic": state_topic, "value_template": template,
                                                               **options}))  # fmt: skip

    for path, oid, label in _heater_names(shape):
        temp = _measure("°C", "temperature", 1)
        sensor(f"{oid}_temperature", f"{label} temperature", temperature, value_template(*path, "actual"), **temp)
        sensor(f"{oid}_target", f"{label} target", temperature, value_template(*path, "target"),
               icon="mdi:thermometer-chevron-up", **temp)  # fmt: skip

    sensor("state", "Printer state", state, value_template("text", test="string", fallback="'Unknown'"),
           icon="mdi:printer-3d", json_attributes_topic=state,
           json_attributes_template=ATTRIBUTES_TEMPLATE)  # fmt: skip
    sensor("progress", "Print progress", job, value_template("progress"), icon="mdi:progress-clock",
           **_measure("%", precision=0))  # fmt: skip
    sensor("print_time", "Print time", job, value_template("print_time", expr=" | round(0)"),
           icon="mdi:timer-outline", **_measure("s", "duration", 0))  # fmt: skip
    sensor("print_time_left", "Print time left", job, value_template("print_time_left", expr=" | round(0)"),
           icon="mdi:timer-sand", **_measure("s", "duration", 0))  # fmt: skip
    sensor("eta", "Print ETA", job, value_template("eta", test="string", fallback=f"'{NO_ETA}'"),
           device_class="timestamp", icon="mdi:clock-end", availability=while_in_job("eta"))  # fmt: skip
    sensor("file", "Print file", job, value_template("file_name", test="string", fallback="''"),
           icon="mdi:file-outline", availability=while_in_job("file_name"))  # fmt: skip
    sensor("current_layer", "Current layer", layers, value_template("current"), icon="mdi:layers-outline",
           state_class="measurement")  # fmt: skip
    sensor("total_layers", "Total layers", layers, value_template("total"), icon="mdi:layers-triple-outline")
    sensor("current_height", "Current height", layers, value_template("current_height"),
           icon="mdi:arrow-expand-up", **_measure("mm", "distance", 2))  # fmt: skip
    sensor("last_layer_duration", "Last layer duration", layers, value_template("last_duration", expr=" | round(1)"),
           icon="mdi:timer-check-outline", **_measure("s", "duration", 0))  # fmt: skip
    sensor("average_layer_duration", "Average layer duration", layers,
           value_template("average_duration", expr=" | round(1)"), icon="mdi:timer-cog-outline",
           **_measure("s", "duration", 0))  # fmt: skip
    for fan in shape.fans:
        name = "Fan speed" if fan == "0" else f"Fan {fan} speed"
        sensor(f"fan{fan}_speed", name, fans, value_template("fans", fan, "speed"), icon="mdi:fan",
               **_measure("%", precision=0))  # fmt: skip

    out.append(Entity("binary_sensor", "printer_connected", "Printer connected",
                      {"state_topic": state, "value_template": flag_template("operational"),
                       "device_class": "connectivity", **DIAGNOSTIC}))  # fmt: skip
    out.append(Entity("binary_sensor", "printer_printing", "Printing",
                      {"state_topic": state, "value_template": flag_template("printing"), "device_class": "running",
                       "icon": "mdi:printer-3d-nozzle"}))  # fmt: skip

    buttons: dict[CommandRoute[Any], tuple[str, str, tuple[str, ...]]] = {
        contract.PAUSE: ("Pause print", "mdi:pause", ("printing",)),
        contract.RESUME: ("Resume print", "mdi:play", ("paused",)),
        contract.CANCEL: ("Cancel print", "mdi:stop", ("printing", "paused")),
    }
    for command, (name, icon, when) in buttons.items():
        if command == contract.CANCEL and not allow_cancel:
            continue
        out.append(Entity("button", f"printer_{command.name}", name, {
            "command_topic": topics.absolute(command.cmd(me)),
            "command_template": press_template(command.name),
            "qos": 1,
            "retain": False,
            "icon": icon,
            "availability": _availability(status, state, flags_availability(*when)),
        }))  # fmt: skip
    return out
