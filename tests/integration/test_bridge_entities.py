"""The printer's Home Assistant entities (``octoprint_printmesh.entities``).

The structural checks run here. The templates are rendered by Jinja the way Home
Assistant renders them (an immutable sandbox, ``now()``, the ``random`` filter, and an
``Undefined`` that records every use HA would log as "Template variable warning"). The
test venv has no Jinja, so that part runs in OctoPrint's venv, which has it.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from octoprint_harness import octoprint_venv

from octoprint_printmesh.entities import NO_ETA, PrinterShape, printer_entities, printer_shape
from octoprint_printmesh.job_commands import JobControl, job_commands
from octoprint_printmesh.logic.fans import Fans, FanSettings, fans_payload, feed
from octoprint_printmesh.logic.telemetry import job_payload, profile_payload, state_payload, temperatures_payload
from octoprint_printmesh.settings import DEFAULTS
from printmesh_core.commands import parse
from printmesh_core.discovery import Entity, entity_config
from printmesh_core.models.envelope import CommandRequest
from printmesh_core.models.printer import (
    HeaterTemperature,
    LayerProgress,
    PrinterFans,
    PrinterJob,
    PrinterState,
    PrinterTemperatures,
)
from printmesh_core.repeats import Dedupe
from printmesh_core.topics import DiscoveryTopics, Topics, check_publish_topic

NODE = "octopi"
TOPICS = Topics("printmesh", NODE)
ME = TOPICS.component("printer")
BASE = f"printmesh/{NODE}/printer"
STATUS = f"{BASE}/status"
NOW = 1_795_314_041.0
FULL = PrinterShape(tools=("tool0", "tool1"), bed=True, chamber=True, fans=("0", "1"))

# Home Assistant 2024.3: unit per device class (of those used here), binary sensor classes.
UNITS = {"temperature": {"°C"}, "duration": {"s"}, "distance": {"mm"}, "timestamp": {None}, None: {None, "%"}}
BINARY_CLASSES = {"connectivity", "running"}


def entities(shape: PrinterShape = FULL, allow_cancel: bool = True, topics: Topics = TOPICS) -> list[Entity]:
    return printer_entities(topics, topics.component("printer"), shape, allow_cancel=allow_cancel)


def configs(ents: list[Entity], topics: Topics = TOPICS) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config, exactly as the core's DiscoveryPublisher publishes them."""
    me = topics.component("printer")
    disc = DiscoveryTopics("homeassistant", topics.node_id, "printer")
    status = topics.absolute(me.status)
    return {disc.config(*e.key): entity_config(e, topics.node_id, "printer", status) for e in ents}


def by_oid(ents: list[Entity]) -> dict[str, Entity]:
    return {e.object_id.removeprefix("printer_"): e for e in ents}


# ------------------------------------------------------------------ structure
def test_every_entity_has_a_unique_id_availability_and_one_of_our_topics():
    cfgs = configs(entities())
    assert len(cfgs) == len(entities()), "two entities share a discovery topic"
    unique_ids = [c["unique_id"] for c in cfgs.values()]
    assert len(unique_ids) == len(set(unique_ids))
    retained = {f"{BASE}/{leaf}" for leaf in ("temperature", "state", "job", "layer_progress", "fans")}
    for topic, c in cfgs.items():
        assert c["unique_id"].startswith(f"printmesh_{NODE}_printer_printer_"), topic
        assert c["name"] and not c["name"].lower().startswith(NODE), "entity name must not repeat the device name"
        assert c["availability"][0] == {"topic": STATUS, "value_template": "{{ value_json.state }}"}, topic
        assert c["availability_mode"] == "all" and c["payload_available"] == "online"
        assert c["payload_not_available"] == "offline"
        for extra in c["availability"][1:]:
            assert extra["topic"] in retained and "online" in extra["value_template"], topic
        if topic.startswith("homeassistant/button/"):
            assert c["command_topic"] == f"{BASE}/cmd/{c['unique_id'].rsplit('_', 1)[1]}"
            assert c["retain"] is False and c["qos"] == 1
            assert "payload_press" not in c, "a constant press would be dropped as a repeated id"
        else:
            assert c["state_topic"] in retained, topic
            check_publish_topic(c["state_topic"])


def test_device_classes_units_and_state_classes_are_valid_home_assistant_combinations():
    for e in entities():
        o = e.options
        if e.platform == "binary_sensor":
            assert o["device_class"] in BINARY_CLASSES, e.object_id
            assert "unit_of_measurement" not in o and "state_class" not in o
            continue
        if e.platform != "sensor":
            continue
        device_class, unit = o.get("device_class"), o.get("unit_of_measurement")
        assert unit in UNITS[device_class], f"{e.object_id}: {device_class} with unit {unit!r}"
        if device_class == "timestamp":
            assert "state_class" not in o, "a timestamp has no state class"
        if o.get("state_class") is not None:
            assert o["state_class"] == "measurement"
        if unit is not None:
            assert o.get("state_class") == "measurement", f"{e.object_id}: a measured value without state_class"


def test_the_expected_entities_exist():
    ids = set(by_oid(entities()))
    assert ids == {
        "tool0_temperature", "tool0_target", "tool1_temperature", "tool1_target", "bed_temperature", "bed_target",
        "chamber_temperature", "chamber_target", "state", "progress", "print_time", "print_time_left", "eta", "file",
        "current_layer", "total_layers", "current_height", "last_layer_duration", "average_layer_duration",
        "fan0_speed", "fan1_speed", "connected", "printing", "pause", "resume", "cancel",
    }  # fmt: skip
    e = by_oid(entities())
    assert e["eta"].options["device_class"] == "timestamp"
    assert e["print_time_left"].options["device_class"] == "duration"
    assert e["connected"].options["device_class"] == "connectivity"
    assert e["tool1_temperature"].name == "Tool 1 temperature" and e["fan1_speed"].name == "Fan 1 speed"
    assert e["fan0_speed"].name == "Fan speed"


def test_cancel_is_offered_only_when_allowed():
    assert "cancel" not in by_oid(entities(allow_cancel=False))
    assert {"pause", "resume"} <= set(by_oid(entities(allow_cancel=False)))
    assert "cancel" in by_oid(entities(allow_cancel=True))


def test_buttons_target_commands_the_bridge_serves():
    noop = JobControl(lambda: True, lambda: True, lambda: None, lambda: None, lambda: None)
    served = {c.name for c in job_commands(noop, allow_cancel=True)}
    for e in entities():
        if e.platform == "button":
            assert e.options["command_topic"].rsplit("/", 1)[1] in served


def test_shape_follows_the_profile_the_reported_heaters_and_the_fans_seen():
    assert printer_shape(None) == PrinterShape(tools=("tool0",), bed=True, chamber=False, fans=("0",))
    profile = profile_payload({"extruder": {"count": 2}, "heatedBed": False, "heatedChamber": True}, NOW)
    shape = printer_shape(profile)
    assert shape.tools == ("tool0", "tool1") and not shape.bed and shape.chamber
    tool10, bed = {"tool10": HeaterTemperature(actual=20)}, HeaterTemperature(actual=20)
    temps = PrinterTemperatures(ts=NOW, tools=tool10, bed=bed)
    shape = printer_shape(profile, temps, fans=[2, "10", 1])
    assert shape.tools == ("tool0", "tool1", "tool10"), "numeric order; a reported heater gets its entities"
    assert shape.bed, "a bed the printer reports counts even if the profile says none"
    assert shape.fans == ("0", "1", "2", "10")
    one = by_oid(entities(printer_shape(profile_payload({}, NOW))))
    assert one["tool0_temperature"].name == "Tool temperature", "one tool: no number"
    assert "chamber_temperature" not in one and "fan1_speed" not in one


def test_a_nested_root_and_an_odd_node_id():
    topics = Topics("home/printmesh", "pi.kitchen")
    cfgs = configs(entities(topics=topics), topics)
    for topic, c in cfgs.items():
        assert topic.startswith("homeassistant/") and "/printmesh_pi_kitchen_printer/" in topic
        assert c["unique_id"].startswith("printmesh_pi_kitchen_printer_")
        assert c["availability"][0]["topic"] == "home/printmesh/pi.kitchen/printer/status"
        assert all(a["topic"].startswith("home/printmesh/pi.kitchen/printer/") for a in c["availability"])
        assert (c.get("state_topic") or c["command_topic"]).startswith("home/printmesh/pi.kitchen/printer/")


# ------------------------------------------------------------------ templates, rendered
RENDERER = r"""
import json, sys
from datetime import datetime, timezone
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

used = []

class Recording(jinja2.Undefined):
    # What Home Assistant's LoggingUndefined logs as "Template variable warning/error".
    def _fail_with_undefined_error(self, *args, **kwargs):
        used.append("error: " + self._undefined_message)
        return super()._fail_with_undefined_error(*args, **kwargs)
    def __str__(self):
        used.append("str: " + self._undefined_message)
        return super().__str__()
    def __iter__(self):
        used.append("iter: " + self._undefined_message)
        return super().__iter__()
    def __bool__(self):
        used.append("bool: " + self._undefined_message)
        return super().__bool__()

env = ImmutableSandboxedEnvironment(undefined=Recording)
env.globals["now"] = lambda: datetime.now(timezone.utc)
out = []
for case in json.load(sys.stdin):
    used.clear()
    variables = {"value": case["payload"]}
    try:
        variables["value_json"] = json.loads(case["payload"])
    except ValueError:
        pass
    try:
        result, error = env.from_string(case["template"]).render(**variables).strip(), None
    except Exception as exc:
        result, error = None, f"{type(exc).__name__}: {exc}"
    out.append({"out": result, "error": error, "undefined": list(used)})
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def render() -> Any:
    python = octoprint_venv() / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import jinja2"], capture_output=True) if python.exists() else None
    if probe is None or probe.returncode != 0:
        pytest.fail(f"no Jinja to render with ({python}): run ./scripts/test, which builds OctoPrint's venv")

    def run(cases: list[tuple[str, str]]) -> list[dict[str, Any]]:
        doc = json.dumps([{"template": t, "payload": p} for t, p in cases])
        proc = subprocess.run([str(python), "-c", RENDERER], input=doc, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        results: list[dict[str, Any]] = json.loads(proc.stdout)
        for (template, payload), r in zip(cases, results, strict=True):
            assert r["error"] is None, f"{template} on {payload!r}: {r['error']}"
            assert not r["undefined"], f"{template} on {payload!r} would log: {r['undefined']}"
        return results

    return run


def _leaf(topic: str) -> str:
    return topic.rsplit("/", 1)[1]


def _templates(e: Entity) -> list[tuple[str, str]]:
    """(topic leaf, template) of the value, of every extra availability, and of the attributes."""
    o = e.options
    out = [(_leaf(o["state_topic"]), o["value_template"])] if "value_template" in o else []
    out += [(_leaf(a["topic"]), a["value_template"]) for a in o.get("availability", [])[1:]]
    if "json_attributes_template" in o:
        out.append((_leaf(o["json_attributes_topic"]), o["json_attributes_template"]))
    return out


def live_payloads() -> dict[str, str]:
    """A print in progress, through the bridge's own payload builders."""
    temps = temperatures_payload(
        {"tool0": {"actual": 210.3, "target": 210.0}, "tool1": {"actual": 25.0, "target": 0.0},
         "bed": {"actual": 59.8, "target": 60.0}, "chamber": {"actual": 30.1, "target": 35.0}}, NOW)  # fmt: skip
    data = {
        "state": {"text": "Printing", "flags": {"operational": True, "printing": True, "ready": False}},
        "job": {"file": {"name": "cube.gcode", "display": "cube.gcode", "path": "cube.gcode", "size": 43923,
                         "origin": "local"}, "estimatedPrintTime": 1200.0},
        "progress": {"completion": 42.51, "filepos": 18000, "printTime": 510.4, "printTimeLeft": 689.6,
                     "printTimeLeftOrigin": "linear"},
        "currentZ": 0.6,
    }  # fmt: skip
    fans = feed(Fans.empty(), "M106 S128", NOW, FanSettings())
    fans = feed(fans, "M106 P1 S255", NOW, FanSettings())
    layers = LayerProgress(ts=NOW, current=3, total=15, current_height=0.6, total_height=3.0, last_duration=0.1234,
                           average_duration=0.11, durations=[0.1, 0.1234])  # fmt: skip
    return {
        "temperature": temps.model_dump_json(),
        "state": state_payload(data, NOW, on_hold=False).model_dump_json(),
        "job": job_payload(data, NOW, NOW - 600).model_dump_json(),
        "layer_progress": layers.model_dump_json(),
        "fans": fans_payload(fans, NOW).model_dump_json(),
    }


def test_templates_read_a_live_print(render):
    payloads = live_payloads()
    e = by_oid(entities())
    cases = [(oid, leaf, t) for oid, ent in e.items() for leaf, t in _templates(ent)]
    results = render([(t, payloads[leaf]) for _, leaf, t in cases])
    got: dict[str, list[str]] = {}
    for (oid, _, _), r in zip(cases, results, strict=True):
        got.setdefault(oid, []).append(r["out"])
    assert got["tool0_temperature"] == ["210.3"] and got["tool0_target"] == ["210.0"]
    assert got["tool1_target"] == ["0.0"] and got["bed_temperature"] == ["59.8"]
    assert got["chamber_temperature"] == ["30.1"] and got["chamber_target"] == ["35.0"]
    state, attributes = got["state"]
    assert state == "Printing" and json.loads(attributes) == json.loads(payloads["state"]), "the state as attributes"
    assert got["progress"] == ["42.51"]
    assert got["print_time"] == ["510.0"] and got["print_time_left"] == ["690.0"]
    eta, eta_available = got["eta"]
    assert eta_available == "online"
    parsed = datetime.fromisoformat(eta)
    assert parsed.tzinfo is not None and parsed.timestamp() == pytest.approx(NOW + 689.6, abs=1)
    assert got["file"] == ["cube.gcode", "online"]
    assert got["current_layer"] == ["3"] and got["total_layers"] == ["15"] and got["current_height"] == ["0.6"]
    assert got["last_layer_duration"] == ["0.1"] and got["average_layer_duration"] == ["0.1"]
    assert got["fan0_speed"] == ["50.2"] and got["fan1_speed"] == ["100.0"]
    assert got["connected"] == ["ON"] and got["printing"] == ["ON"]
    # buttons: availability only; while printing, pause and cancel can act, resume cannot
    assert (got["pause"], got["resume"], got["cancel"]) == (["online"], ["offline"], ["online"])
    paused = json.loads(payloads["state"])
    paused["flags"].update(printing=False, paused=True)
    flags = render([(t, json.dumps(paused)) for b in ("pause", "resume", "cancel") for _, t in _templates(e[b])])
    assert [r["out"] for r in flags] == ["offline", "online", "online"], "pause, resume, cancel while paused"


@pytest.mark.parametrize("case", ["idle", "nulls", "not json", "empty object", "list", "null"])
def test_templates_are_null_safe(render, case):
    """What HA sees with no job, a heater missing, or a foreign message: no log line, no stale value."""
    idle = {
        "temperature": PrinterTemperatures(ts=NOW, tools={"tool0": HeaterTemperature(actual=21.3)}).model_dump_json(),
        "state": PrinterState(ts=NOW, text="Operational").model_dump_json(),
        "job": PrinterJob(ts=NOW).model_dump_json(),
        "layer_progress": LayerProgress(ts=NOW).model_dump_json(),
        "fans": PrinterFans(ts=NOW).model_dump_json(),
    }
    nulls = {leaf: json.dumps({k: None for k in json.loads(p)}) for leaf, p in idle.items()}
    raw = {"not json": "not json", "empty object": "{}", "list": "[1, 2]", "null": "null"}
    payloads = {"idle": idle, "nulls": nulls}.get(case) or dict.fromkeys(idle, raw.get(case, ""))
    e = by_oid(entities())
    cases = [(oid, leaf, t) for oid, ent in e.items() for leaf, t in _templates(ent)]
    results = render([(t, payloads[leaf]) for _, leaf, t in cases])
    for (oid, leaf, _), r in zip(cases, results, strict=True):
        out = r["out"]
        if oid in ("eta", "file"):
            assert out in ("offline", NO_ETA, ""), f"{oid}: {out!r}"  # unavailable, with a harmless placeholder
        elif oid in ("pause", "resume", "cancel"):
            assert out == "offline", f"{oid} must be unavailable when idle or unknown"
        elif oid == "state" and out.startswith("{"):  # attributes: the state as it came, else none
            assert json.loads(out) == (json.loads(payloads[leaf]) if case in ("idle", "nulls", "empty object") else {})
        elif oid == "state":
            assert out == ("Operational" if case == "idle" else "Unknown")
        elif oid == "tool0_temperature" and case == "idle":
            assert out == "21.3"
        elif oid in ("connected", "printing") and case == "idle":
            assert out == "OFF"
        else:
            assert out == "None", f"{oid} on {leaf} {case}: {out!r} (HA: unknown)"


def test_button_presses_become_valid_requests_with_distinct_ids(render):
    noop = JobControl(lambda: True, lambda: True, lambda: None, lambda: None, lambda: None)
    table = {c.name: c for c in job_commands(noop, allow_cancel=True)}
    dedupe = Dedupe(60.0)
    for e in entities():
        if e.platform != "button":
            continue
        name = e.options["command_topic"].rsplit("/", 1)[1]
        presses = render([(e.options["command_template"], "PRESS")] * 50)
        ids = set()
        for r in presses:
            rid, request = parse(table[name], name, r["out"].encode())
            assert isinstance(request, CommandRequest), f"{r['out']} -> {request}"
            assert rid == request.id and request.id.startswith(f"ha-{name}-") and len(request.id) <= 128
            assert dedupe.first_time((name, request.id)), f"press {request.id} would be dropped as a repeat"
            ids.add(request.id)
        assert len(ids) == 50


def test_no_eta_placeholder_is_a_date_home_assistant_accepts():
    assert datetime.fromisoformat(NO_ETA) == datetime(1970, 1, 1, tzinfo=UTC)


def test_the_renderer_catches_what_home_assistant_would_log(render):
    """Guards the guard: unguarded templates must fail the checks above."""
    with pytest.raises(AssertionError, match=r"would log|UndefinedError"):
        render([("{{ value_json.progress }}", "not json")])
    with pytest.raises(AssertionError, match=r"would log|UndefinedError"):
        render([("{{ value_json.tools.tool0.actual }}", "{}")])
    with pytest.raises(AssertionError, match=r"would log|UndefinedError"):
        render([("{{ 'ON' if value_json.flags.printing else 'OFF' }}", "{}")])


# ------------------------------------------------------------------ settings page
def test_the_settings_page_binds_only_settings_that_exist():
    """The page (templates/printmesh_settings.jinja2) and printmesh.js name settings paths; they must exist."""
    package = resources.files("octoprint_printmesh")
    page = (package / "templates" / "printmesh_settings.jinja2").read_text()
    script = (package / "static" / "js" / "printmesh.js").read_text()
    assert (package / "templates" / "printmesh_navbar.jinja2").is_file()

    def lookup(path: list[str]) -> Any:
        node: Any = DEFAULTS
        for key in path:
            assert isinstance(node, dict) and key in node, f"{'.'.join(path)} is not a plugin setting"
            node = node[key]
        return node

    form = page[page.index('data-bind="with: s"') :]
    bound = set(re.findall(r"(?:value|checked|enable|visible): ([a-z_]+(?:\.[a-z_]+)*)", form))
    assert len(bound) >= 25
    for path in bound:
        lookup(path.split("."))
    assert {"mqtt.password", "mqtt.tls.key_file", "commands.allow_cancel", "hold.max_hold", "safety.max_z"} <= bound
    numbers = re.search(r"var NUMBERS = \[(.*?)\];", script, re.S)
    texts = re.search(r"var TEXTS = \[(.*?)\];", script, re.S)
    assert numbers and texts
    for group, kinds in ((numbers, (int, float)), (texts, (str,))):
        for match in re.findall(r"\[([^\[\]]+)\]", group.group(1)):
            path = [p.strip().strip('"') for p in match.split(",")]
            assert isinstance(lookup(path), kinds), f"{path}: default of the wrong type"
    for key in ("exclude", "gcode_allow"):  # the two lists are edited as text
        assert f".{key})" in script
