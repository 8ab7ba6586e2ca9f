"""The bridge's worker on a real broker: fast layers batched, none lost, order kept, a hold sends at once.

The gap is 2 s here (0.25 s by default) so that "waited" and "sent at once" are far apart on a
loaded CI machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Observer

from octoprint_printmesh.printer_node import PrinterNode
from octoprint_printmesh.settings import DEFAULTS, to_bridge_settings
from printmesh_core.models.layers import LayerEvent
from printmesh_devkit.broker import LocalBroker

GAP = 2.0
NODE = "batch"
LAYER = f"printmesh/{NODE}/printer/layer"
EVENT = f"printmesh/{NODE}/printer/event"


def layer(n: int) -> LayerEvent:
    return LayerEvent(layer=n, z=0.2 * n, file_pos=100 * n, total_layers=30, source="markers")


def settings(broker: LocalBroker, gap: float) -> dict[str, Any]:
    return {
        **DEFAULTS, "node_id": NODE, "mqtt": {**DEFAULTS["mqtt"], "host": broker.host, "port": broker.port},
        "discovery": {"enabled": False, "prefix": "homeassistant"},
        "publish": {**DEFAULTS["publish"], "layer_interval": gap}, "events": {"enabled": True, "exclude": []},
    }  # fmt: skip


def subscribed(observer: Observer) -> None:
    """Until the observer's subscription is live: its own message came back (printer/layer is not retained)."""
    observer.publish("printmesh/sync/batch", b"x")
    observer.wait_for(lambda m: m.topic == "printmesh/sync/batch", 5)


@pytest.fixture
def node(broker: LocalBroker, observer: Observer) -> Iterator[PrinterNode]:
    printer = PrinterNode(to_bridge_settings(settings(broker, GAP)), lambda message: None)
    printer.start()
    assert printer.runtime.wait_connected(5)
    subscribed(observer)
    yield printer
    printer.stop()


def layers_seen(observer: Observer) -> list[int]:
    return [json.loads(m.payload)["layer"] for m in observer.on(LAYER)]


def wait_layers(observer: Observer, n: int, timeout: float) -> float:
    """Seconds until ``n`` layer messages were seen."""
    t0 = time.monotonic()
    observer.wait_for(lambda m: len(observer.on(LAYER)) >= n, timeout)
    return time.monotonic() - t0


def test_fast_layers_wait_for_the_gap_and_all_arrive_in_order(node: PrinterNode, observer: Observer) -> None:
    node.record_layer(layer(1))
    assert wait_layers(observer, 1, 5) < 1.0  # the first after a quiet gap: at once
    sent = time.monotonic()
    stamps = []
    for n in range(2, 12):
        event = layer(n)
        stamps.append(event.ts)
        node.record_layer(event)
        time.sleep(0.01)
    time.sleep(0.5)
    assert layers_seen(observer) == [1]  # the ten fast ones wait
    wait_layers(observer, 11, 5)
    waited = time.monotonic() - sent
    assert GAP - 0.3 < waited < GAP + 1.5, waited
    assert layers_seen(observer) == list(range(1, 12))
    assert [json.loads(m.payload)["ts"] for m in observer.on(LAYER)][1:] == stamps  # each its own start time


def test_an_event_sends_the_waiting_layers_first(node: PrinterNode, observer: Observer) -> None:
    node.record_layer(layer(1))
    wait_layers(observer, 1, 5)
    node.record_layer(layer(2))
    node.record_layer(layer(3))
    t0 = time.monotonic()
    node.record_event("PrinterStateChanged", {"state_id": "PRINTING"})
    observer.wait_for(lambda m: m.topic == EVENT, 5)
    assert time.monotonic() - t0 < GAP - 0.5
    order = [(m.topic, json.loads(m.payload).get("layer")) for m in observer.messages if m.topic in (LAYER, EVENT)]
    assert order == [(LAYER, 1), (LAYER, 2), (LAYER, 3), (EVENT, None)]


def test_a_hold_starting_sends_the_waiting_layers_at_once(node: PrinterNode, observer: Observer) -> None:
    node.record_layer(layer(1))
    wait_layers(observer, 1, 5)
    node.holds.at_layer = lambda event, line: event.layer == 3  # type: ignore[method-assign]  # the hold's plan
    for n in (2, 3):
        node.record_layer(layer(n))
        assert node.at_layer(layer(n), "G1 X1") is (n == 3)
    assert wait_layers(observer, 3, 5) < GAP - 0.5
    assert layers_seen(observer) == [1, 2, 3]


def test_layers_waiting_when_the_plugin_stops_are_sent(broker: LocalBroker, observer: Observer) -> None:
    printer = PrinterNode(to_bridge_settings(settings(broker, 5.0)), lambda message: None)
    printer.start()
    assert printer.runtime.wait_connected(5)
    subscribed(observer)
    for n in (1, 2, 3):
        printer.record_layer(layer(n))
    wait_layers(observer, 1, 5)
    printer.stop()
    wait_layers(observer, 3, 5)
    assert layers_seen(observer) == [1, 2, 3]
