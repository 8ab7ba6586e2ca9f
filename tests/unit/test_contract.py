"""The topic contract without a broker: routes build topics, readers ignore unknown fields, writers stay strict."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from printmesh_core import contract
from printmesh_core.contract import RawRoute, Route, Unreadable
from printmesh_core.models.printer import HoldStarted, PrinterEvent, PrinterHeld, PrinterProfile
from printmesh_core.schemas import PAYLOADS
from printmesh_core.topics import TopicError, Topics

ROOT = Path(__file__).resolve().parents[2]
T = Topics("printmesh", "n1")
CAM = T.component(contract.CAMERA, "n1")


def routes() -> list[RawRoute]:
    return [v for v in vars(contract).values() if isinstance(v, RawRoute)]


def test_routes_build_topics_and_filters():
    assert contract.CAMERA_IMAGE.topic(CAM, "bed", "c-1") == "n1/camera/bed/capture/c-1"
    assert contract.CAMERA_IMAGE.filter(CAM, "bed") == "n1/camera/bed/capture/+"
    assert contract.CAMERA_AVAILABILITY.filter(CAM) == "n1/camera/+/availability"
    assert contract.STATUS.topic(CAM) == CAM.status and contract.PRINTER_EVENT.topic(CAM) == CAM.event
    assert contract.CAPTURE.cmd(CAM) == "n1/camera/cmd/capture" and contract.CAPTURE.res(CAM) == "n1/camera/res/capture"
    with pytest.raises(ValueError, match="needs 2 names"):
        contract.CAMERA_IMAGE.topic(CAM, "bed")
    with pytest.raises(TopicError):
        contract.CAMERA_IMAGE.topic(CAM, "bed", "a/b")


def test_every_json_route_has_a_published_schema():
    documented = set(PAYLOADS.values())
    missing = [r.model.__name__ for r in routes() if isinstance(r, Route) and r.model not in documented]
    assert not missing, f"add these to schemas.PAYLOADS: {missing}"


def test_readers_ignore_unknown_fields_at_any_depth_writers_stay_strict():
    doc = {"name": "mk4", "volume": {"width": 250, "depth": 210, "height": 220, "new": 1}, "newer": {"x": 1}}
    profile = contract.PRINTER_PROFILE.read(json.dumps(doc))
    assert profile.volume.width == 250 and "newer" not in profile.model_dump()
    with pytest.raises(ValidationError):
        PrinterProfile.model_validate(doc)
    with pytest.raises(ValidationError):
        HoldStarted(hold_id=1, new=2)  # type: ignore[call-arg]
    with pytest.raises(Unreadable, match="volume"):
        contract.PRINTER_PROFILE.read(b'{"name": "mk4"}')


def test_the_held_event_keeps_its_wire_format():
    """What today's bridge publishes (a PrinterEvent with a plain dict payload) reads as PrinterHeld, and back."""
    body = {"hold_id": 3, "layer": 10, "origin": {"x": 1.0, "y": 2.0, "z": 1.8}, "z": 2.0, "path": "a.gcode",
            "started_at": 100.5}  # fmt: skip
    wire = PrinterEvent(ts=5.0, event="held", payload=body, source="printmesh").model_dump_json()
    held = contract.PRINTER_HELD.read(wire)
    assert held.payload.hold_id == 3 and held.payload.origin is not None and held.payload.origin.z == 1.8
    assert json.loads(held.model_dump_json()) == json.loads(wire)
    assert contract.event_body(HoldStarted, PrinterEvent.model_validate_json(wire)) == held.payload
    with pytest.raises(Unreadable):
        contract.PRINTER_HELD.read(PrinterEvent(event="released", source="printmesh", payload=body).model_dump_json())
    assert PrinterHeld(payload=held.payload).source == "printmesh"


def test_one_presence_parser_for_status_availability_and_bare_text():
    status = b'{"ts": 1, "state": "offline", "component": "camera", "version": "1", "reason": "lost", "x": 1}'
    presence = contract.read_presence(status)
    assert presence is not None and presence.state == "offline" and presence.reason == "lost"
    assert contract.read_presence(b"online") is not None and contract.read_presence(b" offline\n") is not None
    for junk in (b"", b"[1]", b'{"state": "maybe"}', b"not json"):
        assert contract.read_presence(junk) is None


CONVERTED = ["coordinator/src", "agents/host/src", "agents/sensors/src", "agents/camera/src"]
TOPIC_CALLS = {"sub", "cmd", "res", "component", "topic", "filter"}


def test_converted_packages_spell_no_topic_level():
    """Topic builders are called with names from the contract or config, never with a string literal."""
    found = []
    for folder in CONVERTED:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    receiver = node.func.value
                    if isinstance(receiver, ast.Name) and receiver.id.lstrip("_").isupper():
                        continue  # a compiled pattern's sub(), not a topic
                    if node.func.attr in TOPIC_CALLS and any(isinstance(a, ast.Constant) for a in node.args):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found
