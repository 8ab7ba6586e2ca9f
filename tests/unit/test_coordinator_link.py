"""The coordinator's MQTT side, without a broker: how bridge events are read."""

from __future__ import annotations

import json

from printmesh_coordinator.link import parse_event
from printmesh_coordinator.messages import XYZ, Held, HoldReleased, PrintEnded


def event(name: str, payload: object, source: str = "printmesh", **extra: object) -> bytes:
    return json.dumps({"ts": 12.5, "event": name, "payload": payload, "source": source, **extra}).encode()


def test_held_event_with_every_field():
    body = {"hold_id": 3, "layer": 10, "z": 2.0, "origin": {"x": 1, "y": 2, "z": 1.8}, "path": "a/b.gcode",
            "started_at": 100.5}  # fmt: skip
    assert parse_event(event("held", body)) == Held(3, 10, 2.0, XYZ(1, 2, 1.8), "a/b.gcode", 100.5, 12.5)


def test_held_event_read_leniently():
    held = parse_event(event("held", {"hold_id": 3, "origin": None, "future_field": 1}, also="new"))
    assert held == Held(3, None, None, None, None, None, 12.5)
    assert parse_event(event("held", {"layer": 4})) is None, "no hold id: not a hold we could release"


def test_released_and_print_end_events():
    assert parse_event(event("released", {"hold_id": 2, "reason": "max_hold", "returned": True})) == HoldReleased(
        2, "max_hold", True, None
    )
    assert parse_event(event("PrintCancelled", {}, "octoprint")) == PrintEnded("cancelled")
    assert parse_event(event("PrintDone", None, "octoprint")) == PrintEnded("done")


def test_other_events_and_garbage_are_ignored():
    for raw in (event("ZChange", {}, "octoprint"), event("moved", {"hold_id": 1}), b"not json", b"[1]", b'{"x":1}'):
        assert parse_event(raw) is None
    assert parse_event(event("PrintDone", {}, "printmesh")) is None, "only OctoPrint's own print events"
