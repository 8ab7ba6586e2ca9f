"""Which OctoPrint events reach the bridge's worker: only those it publishes or acts on."""

from __future__ import annotations

from typing import Any

import pytest

from octoprint_printmesh.printer_node import PrinterNode
from octoprint_printmesh.settings import DEFAULTS, to_bridge_settings


def queued(settings: dict[str, Any], *events: str) -> list[str]:
    merged = {**DEFAULTS, "node_id": "events", **settings}  # as OctoPrint merges the plugin's defaults
    node = PrinterNode(to_bridge_settings(merged), lambda message: None)  # never started
    for name in events:
        node.record_event(name, {})
    names = []
    while not node._queue.empty():
        item = node._queue.get_nowait()
        assert item is not None and item[0] == "event"
        names.append(item[1][0])
    return names


EVENTS = ("ZChange", "PositionUpdate", "PrintStarted", "PrinterStateChanged", "PrintDone", "FirmwareData", "Dwelling")


def test_by_default_z_hops_and_positions_never_wake_the_worker() -> None:
    assert queued({}, *EVENTS) == ["PrintStarted", "PrinterStateChanged", "PrintDone", "FirmwareData", "Dwelling"]


def test_an_event_taken_off_the_exclude_list_is_queued_again() -> None:
    assert queued({"events": {"exclude": []}}, *EVENTS) == list(EVENTS)


@pytest.mark.parametrize("exclude", [["PrintStarted", "PrintDone", "FirmwareData"], []])
def test_events_the_worker_acts_on_are_queued_even_when_not_published(exclude: list[str]) -> None:
    names = queued({"events": {"enabled": False, "exclude": exclude}}, *EVENTS)
    assert names == ["PrintStarted", "PrinterStateChanged", "PrintDone", "FirmwareData"]
