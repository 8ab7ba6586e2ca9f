"""The bridge's retained layer progress: every layer counted, at most one message per second."""

from __future__ import annotations

from typing import Any

from octoprint_printmesh.telemetry_publisher import Snapshot, TelemetryPublisher
from printmesh_core import contract
from printmesh_core.contract import Route
from printmesh_core.models.base import Payload
from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import LayerProgress


def publisher() -> tuple[TelemetryPublisher, list[LayerProgress]]:
    sent: list[LayerProgress] = []

    def publish(route: Route[Any], payload: Payload) -> None:
        if route is contract.PRINTER_LAYER_PROGRESS:
            assert isinstance(payload, LayerProgress)
            sent.append(payload)

    return TelemetryPublisher(publish), sent


def layer(n: int) -> LayerEvent:
    return LayerEvent(layer=n, z=0.2 * n, file_pos=100 * n, total_layers=30, source="markers")


SNAP = Snapshot(data={}, temperatures={}, connection=("Operational", "VIRTUAL", 0, None), profile={})


def test_a_layer_after_a_quiet_second_is_sent_at_once() -> None:
    pub, sent = publisher()
    pub.print_started(100.0)
    pub.layer(layer(1), 101.0)
    pub.layer(layer(2), 102.5)
    assert [p.current for p in sent] == [None, 1, 2]


def test_a_burst_of_short_layers_sends_one_then_the_latest_at_the_tick() -> None:
    pub, sent = publisher()
    pub.print_started(100.0)
    for n in range(1, 11):  # ten layers in 0.9 s
        pub.layer(layer(n), 101.0 + 0.1 * (n - 1))
    assert [p.current for p in sent] == [None, 1]
    pub.tick(SNAP, 101.95)
    assert [p.current for p in sent] == [None, 1, 10]
    assert sent[-1].total == 30 and len(sent[-1].durations) == 9  # every layer still counted
    pub.tick(SNAP, 103.0)  # nothing new: nothing sent
    assert len(sent) == 3


def test_the_print_end_is_always_sent_and_nothing_stale_follows_it() -> None:
    pub, sent = publisher()
    pub.print_started(100.0)
    pub.layer(layer(1), 101.0)
    pub.layer(layer(2), 101.2)  # due at the next tick
    pub.print_ended(101.3)
    assert [p.current for p in sent] == [None, 1, 2]
    pub.tick(SNAP, 102.0)
    assert len(sent) == 3
