"""The topic contract without a broker: routes build topics, readers ignore unknown fields, writers stay strict."""

from __future__ import annotations

import ast
import json
import re
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
CONVERTED += ["bridge_octoprint/src", "devkit/src"]
# Calls that build a topic, publish, subscribe or serve a command: their arguments come from
# the contract (or from config), never from a string literal or an f-string. MQTT's own
# reserved prefixes ("$share") are not printmesh levels.
TOPIC_CALLS = {"sub", "cmd", "res", "component", "topic", "filter", "absolute", "join"}
TOPIC_CALLS |= {"publish", "publish_state", "publish_absolute", "subscribe", "subscribe_relative"}
# Only the first argument names a command or a route (a description may follow): the command
# table, and the bridge's own helpers that take a route.
NAME_FIRST = {"Command", "_changed", "_retain", "deferred", "served"}
# The contract's event names (printmesh's own and OctoPrint's print endings) are never spelled
# in a comparison or an event the hold machine builds; a print ending is no dict key either.
# A hold *phase* is also called "held": a comparison with a ``phase`` is not about events.
EVENT_NAMES = {contract.HELD, contract.RELEASED, *contract.PRINT_ENDINGS}
EVENT_CALLS = {"PublishEvent", "event_payload"}
WILDCARD_LEVEL = re.compile(r"(^|/)[+#](/|$)")  # a filter spelled by hand: "+/coordinator", "/#"


def _name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _strings(node: ast.AST | None) -> set[str]:
    """The string literals of an expression: a constant, or the members of a tuple, list or set."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {v for e in node.elts for v in _strings(e)}
    return set()


def _spelled_topic(arg: ast.expr) -> bool:
    return isinstance(arg, ast.JoinedStr) or any(not v.startswith("$") for v in _strings(arg))


def _problem(node: ast.AST, docstrings: set[int]) -> str | None:
    if isinstance(node, ast.Call):
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        if isinstance(receiver, ast.Constant) or (isinstance(receiver, ast.Name) and receiver.id.lstrip("_").isupper()):
            return None  # ", ".join(...), a compiled pattern's sub(): not topics
        name = _name(node.func)
        if name in TOPIC_CALLS and any(_spelled_topic(a) for a in node.args):
            return f"{name}() with a literal"
        if name in NAME_FIRST and node.args and _spelled_topic(node.args[0]):
            return f"{name}() with a literal"
        if name in EVENT_CALLS and node.args and _strings(node.args[0]) & EVENT_NAMES:
            return f"{name}() names an event"
    elif isinstance(node, ast.Compare) and _name(node.left) != "phase":
        if any(_strings(c) & EVENT_NAMES for c in [node.left, *node.comparators]):
            return "compares with an event name"
    elif isinstance(node, ast.Dict) and any(_strings(k) & set(contract.PRINT_ENDINGS) for k in node.keys):
        return "a print ending as a key"
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
        return "a filter spelled by hand" if WILDCARD_LEVEL.search(node.value) else None
    return None


def topic_literals(root: Path, folders: list[str]) -> list[str]:
    """Every place in ``folders`` (under ``root``) that spells a topic level, an event name or a filter."""
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
            for node in ast.walk(tree):
                problem = _problem(node, docstrings)
                if problem is not None:
                    found.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}: {problem}")
    return found


def test_converted_packages_spell_no_topic_level():
    """Topic builders, publishers, subscribers and command tables take names from the contract or config."""
    found = topic_literals(ROOT, CONVERTED)
    assert not found, found
