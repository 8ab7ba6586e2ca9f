"""Bridge pure core: printer payload models, OctoPrint data -> payloads, publish policy, layers."""

from __future__ import annotations

import inspect
import json
import math

import pytest
from pydantic import BaseModel, ValidationError

from octoprint_printmesh.logic import layer_progress as lt
from octoprint_printmesh.logic.telemetry import (
    TemperaturePolicy,
    connection_payload,
    event_payload,
    job_payload,
    json_safe,
    profile_payload,
    should_publish_temperatures,
    state_payload,
    temperatures_payload,
)
from printmesh_core.models import printer as pm
from printmesh_core.models import printer_commands, printer_hold  # re-exported by printer.py: checked too
from printmesh_core.models.envelope import CommandRequest
from printmesh_core.models.layers import LayerEvent

MODELS = [m for mod in (pm, printer_hold, printer_commands) for _, m in inspect.getmembers(mod, inspect.isclass)
          if issubclass(m, BaseModel) and m.__module__ == mod.__name__]  # fmt: skip

# Shapes as OctoPrint 1.11 hands them out (see the OctoPrint facts note, section 10).
CURRENT_DATA = {
    "state": {
        "text": "Printing",
        "flags": {
            "operational": True,
            "printing": True,
            "cancelling": False,
            "pausing": False,
            "resuming": False,
            "finishing": False,
            "closedOrError": False,
            "error": False,
            "paused": False,
            "ready": False,
            "sdReady": True,
        },
        "error": "",
    },
    "job": {
        "file": {
            "name": "cube.gcode",
            "path": "folder/cube.gcode",
            "display": "cube.gcode",
            "origin": "local",
            "size": 2001,
            "date": 1795300000,
        },
        "estimatedPrintTime": 66.2,
        "averagePrintTime": None,
        "lastPrintTime": None,
        "filament": {"tool0": {"length": 19.5, "volume": 0.0}},
        "user": "admin",
    },
    "progress": {
        "completion": 36.13,
        "filepos": 723,
        "printTime": 1,
        "printTimeLeft": 2,
        "printTimeLeftOrigin": "linear",
    },
    "currentZ": 0.6,
    "offsets": {},
    "resends": {"count": 0, "transmitted": 10, "ratio": 0},
}
DEFAULT_PROFILE = {
    "id": "_default",
    "name": "Default",
    "model": "Generic RepRap Printer",
    "color": "default",
    "volume": {
        "width": 200,
        "depth": 200,
        "height": 200,
        "formFactor": "rectangular",
        "origin": "lowerleft",
        "custom_box": False,
    },
    "heatedBed": True,
    "heatedChamber": False,
    "extruder": {
        "count": 1,
        "offsets": [(0, 0)],
        "nozzleDiameter": 0.4,
        "sharedNozzle": False,
        "defaultExtrusionLength": 5,
    },
    "axes": {
        "x": {"speed": 6000, "inverted": False},
        "y": {"speed": 6000, "inverted": False},
        "z": {"speed": 200, "inverted": False},
        "e": {"speed": 300, "inverted": False},
    },
}


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_has_a_description_and_a_schema(model):
    for name, field in model.model_fields.items():
        if name in ("ts", "id"):
            continue  # inherited from Payload / CommandRequest, described there
        assert field.description, f"{model.__name__}.{name} has no description"
    schema = model.model_json_schema(mode="serialization")
    assert schema["type"] == "object"


def test_command_requests_are_envelope_requests():
    for model in (
        pm.HoldRequest,
        pm.ReleaseRequest,
        pm.PauseRequest,
        pm.ResumeRequest,
        pm.CancelRequest,
        pm.MoveRequest,
        pm.GcodeRequest,
    ):
        assert issubclass(model, CommandRequest)
    with pytest.raises(ValidationError):
        pm.PauseRequest(id="1", extra=True)


def test_hold_request_needs_exactly_one_kind():
    assert pm.HoldRequest(id="1", now=True).now
    assert pm.HoldRequest(id="1", layer=5).layer == 5
    assert pm.HoldRequest(id="1", plan={"every": 10, "last": True}).plan == pm.HoldPlan(every=10, last=True)
    for bad in ({}, {"now": True, "layer": 3}, {"layer": 0}, {"plan": {}}, {"plan": {"layers": [0]}}):
        with pytest.raises(ValidationError):
            pm.HoldRequest(id="1", **bad)


def test_gcode_request_refuses_smuggled_lines():
    assert pm.GcodeRequest(id="1", lines=["M117 hi", "M106 S255"]).lines == ["M117 hi", "M106 S255"]
    for bad in ([], ["M117 a\nG28"], [""], ["x" * 300], ["M117 ok"] * 51):
        with pytest.raises(ValidationError):
            pm.GcodeRequest(id="1", lines=bad)


def test_move_request_bounds_junk():
    assert pm.MoveRequest(id="1", x=10).y is None
    for bad in ({"x": 1e9}, {"feedrate": 0}, {"z": math.nan}):
        with pytest.raises(ValidationError):
            pm.MoveRequest(id="1", **bad)


# ------------------------------------------------------------------ OctoPrint data -> payloads
def test_state_from_current_data():
    state = state_payload(CURRENT_DATA, 10.0, on_hold=True)
    assert state.text == "Printing" and state.flags.printing and state.flags.sd_ready and not state.flags.paused
    assert state.error is None and state.current_z == 0.6 and state.on_hold and state.ts == 10.0
    empty = state_payload({}, 10.0, on_hold=False)
    assert empty.text == "Unknown" and not empty.flags.operational


def test_connection_payload():
    conn = connection_payload(("Operational", "VIRTUAL", 115200, DEFAULT_PROFILE), "Virtual Marlin 1.0", 5.0)
    assert (conn.state, conn.port, conn.baudrate, conn.firmware) == (
        "Operational",
        "VIRTUAL",
        115200,
        "Virtual Marlin 1.0",
    )
    assert connection_payload(("Closed", None, None, None), None, 5.0).port is None
    assert connection_payload((), None, 5.0).state == "Unknown"


def test_profile_default_center_circular_and_custom_box():
    p = profile_payload(DEFAULT_PROFILE, 1.0)
    assert p.name == "Default" and p.volume.origin == "lowerleft" and p.volume.custom_box is None
    assert p.speeds.z == 200 and p.extruder_count == 1 and p.nozzle_diameter == 0.4 and p.heated_bed
    delta = {
        **DEFAULT_PROFILE,
        "volume": {
            "width": 180,
            "depth": 1,
            "height": 300,
            "formFactor": "circular",
            "origin": "lowerleft",
            "custom_box": False,
        },
    }
    d = profile_payload(delta, 1.0)
    assert d.volume.origin == "center" and d.volume.depth == 180, "OctoPrint forces these on round beds"
    boxed = {
        **DEFAULT_PROFILE,
        "volume": {**DEFAULT_PROFILE["volume"], "custom_box": {"x_min": -5, "x_max": 210, "y_min": None}},
    }
    box = profile_payload(boxed, 1.0).volume.custom_box
    assert box is not None and (box.x_min, box.x_max, box.y_min, box.z_max) == (-5, 210, 0, 200)
    assert profile_payload({}, 1.0).volume.width == 200


def test_temperatures_from_push_and_poll_shapes():
    pushed = {
        "time": 1795300000,
        "tool0": {"actual": 209.8, "target": 210.0},
        "bed": {"actual": 60.1, "target": 60.0},
        "chamber": {"actual": None, "target": None},
    }
    t = temperatures_payload(pushed, 3.0)
    assert t.tools["tool0"].actual == 209.8 and t.bed is not None and t.bed.target == 60 and t.chamber is None
    polled = {
        "tool0": {"actual": 20.0, "target": 0.0, "offset": 0},
        "tool1": {"actual": 21.0, "target": 0.0, "offset": 5},
        "bed": {"actual": 20, "target": 0, "offset": 0},
    }
    t = temperatures_payload(polled, 3.0)
    assert list(t.tools) == ["tool0", "tool1"] and t.tools["tool1"].offset == 5
    assert temperatures_payload({"tool0": "junk", "toolX": {}, "bed": {"actual": math.nan}}, 3.0).bed is None


def test_temperature_publish_policy():
    policy = TemperaturePolicy(threshold=0.5, min_interval=1.0, max_interval=30.0)

    def temps(ts, actual, target=210.0):
        return pm.PrinterTemperatures(ts=ts, tools={"tool0": pm.HeaterTemperature(actual=actual, target=target)})

    last = temps(100.0, 200.0)
    assert should_publish_temperatures(None, last, 100.0, policy), "first reading"
    assert not should_publish_temperatures(last, temps(102, 200.3), 102.0, policy), "small change"
    assert should_publish_temperatures(last, temps(102, 200.6), 102.0, policy), "beyond the threshold"
    assert not should_publish_temperatures(last, temps(100.5, 201.0), 100.5, policy), "too soon for a drift"
    assert should_publish_temperatures(last, temps(100.5, 200.0, target=0.0), 100.5, policy), "a target change is news"
    assert should_publish_temperatures(last, temps(130, 200.0), 130.0, policy), "heartbeat"
    with_bed = last.model_copy(update={"bed": pm.HeaterTemperature(actual=20.0, target=0.0)})
    assert should_publish_temperatures(last, with_bed, 100.2, policy), "a heater appeared"


def test_job_payload_eta_and_times():
    job = job_payload(CURRENT_DATA, 1795300100.0, started_at=1795300090.0)
    assert job.file_name == "cube.gcode" and job.file_path == "folder/cube.gcode" and job.file_size == 2001
    assert job.progress == 36.13 and job.file_position == 723 and job.print_time == 1 and job.print_time_left == 2
    assert job.print_time_left_origin == "linear" and job.estimated_total == 3
    assert job.eta_unix == 1795300102.0 and job.eta == "2026-11-21T22:28:22Z"
    assert job.time_since_start == 10.0 and job.started_at == 1795300090.0
    early = {**CURRENT_DATA, "progress": {"completion": None, "printTimeLeft": None, "printTimeLeftOrigin": None}}
    e = job_payload(early, 5.0, None)
    assert e.eta is None and e.eta_unix is None and e.estimated_total == 66.2 and e.time_since_start is None
    assert job_payload({"job": {"file": {"name": None}}, "progress": None}, 5.0, None).file_name is None


def test_events_are_made_json_safe():
    class Odd:
        def __str__(self) -> str:
            return "odd"

    payload = {"position": {"x": 1.0, "f": math.inf}, "tags": {"b", "a"}, "t": (1, 2), "o": Odd(), 3: None}
    ev = event_payload("PrintPaused", payload, 7.0)
    assert ev.payload == {"position": {"x": 1.0, "f": None}, "tags": ["a", "b"], "t": [1, 2], "o": "odd", "3": None}
    json.loads(ev.to_json())
    assert event_payload("Disconnected", None, 7.0).payload is None, "as the bridge already publishes it"
    assert event_payload("X", [1], 7.0).payload == {"value": [1]}
    assert event_payload("held", {"layer": 3}, 7.0, source="printmesh").source == "printmesh"
    deep: dict = {}
    cur = deep
    for _ in range(20):
        cur["n"] = {}
        cur = cur["n"]
    assert isinstance(json.dumps(json_safe(deep)), str)


# ------------------------------------------------------------------ layers
def test_layer_durations_exclude_suspensions_and_ignore_repeats():
    t = lt.start_print(total=4, total_height=0.8)
    t = lt.layer_reached(t, 1, 0.2, 100.0)
    t = lt.layer_reached(t, 1, 0.2, 101.0)  # duplicate
    t = lt.layer_reached(t, 2, 0.4, 110.0)
    t = lt.suspend(t, 112.0)
    t = lt.suspend(t, 113.0)  # already suspended: the first start counts
    t = lt.resume(t, 142.0)
    t = lt.layer_reached(t, 3, 0.6, 150.0)
    t = lt.layer_reached(t, 2, 0.4, 151.0)  # out of order
    p = lt.layers_payload(t, 151.0)
    assert p.current == 3 and p.current_height == 0.6 and p.durations == [10.0, 10.0]
    assert p.last_duration == 10.0 and p.average_duration == 10.0 and p.total == 4 and p.total_height == 0.8
    t = lt.suspend(t, 155.0)
    t = lt.layer_reached(t, 4, 0.8, 170.0)  # a layer event ends a suspension
    t = lt.finish(t, 176.0)
    p = lt.layers_payload(t, 176.0)
    assert p.durations == [10.0, 10.0, 5.0, 6.0] and p.average_duration == 7.75


def test_layer_events_from_the_follower_fill_in_the_totals():
    event = LayerEvent(
        ts=1.0, layer=1, z=0.2, height=0.2, file_pos=741, total_layers=15, total_height=3.0, source="markers"
    )
    t = lt.on_layer_event(lt.start_print(), event, 100.0)
    p = lt.layers_payload(t, 100.0)
    assert (p.current, p.current_height, p.total, p.total_height) == (1, 0.2, 15, 3.0)
    live = event.model_copy(update={"layer": 2, "z": 0.4, "total_layers": None, "total_height": None})
    assert lt.layers_payload(lt.on_layer_event(t, live, 110.0), 110.0).total == 15


def test_layers_beyond_the_announced_total_raise_it_and_the_list_is_bounded():
    t = lt.start_print(total=2)
    for layer in range(1, lt.MAX_DURATIONS + 10):
        t = lt.layer_reached(t, layer, None, float(layer))
    p = lt.layers_payload(t, 0.0)
    assert p.total == lt.MAX_DURATIONS + 9 and len(p.durations) == lt.MAX_DURATIONS
    assert p.average_duration == 1.0 and lt.layers_payload(lt.start_print(), 0.0).average_duration is None
