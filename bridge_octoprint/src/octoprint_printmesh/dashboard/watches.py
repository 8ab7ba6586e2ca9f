"""Which topics the dashboard reads: contract routes, with wildcards for nodes, sensors, cameras.

Nodes, sensors and cameras are found in the topic tree, so adding a sensor Pi needs no
OctoPrint setting. The printer's own telemetry and its coordinator's captures are read for
this bridge's node only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from printmesh_core import contract
from printmesh_core.contract import RawRoute
from printmesh_core.routing import matches

PRINTER_ROUTES: dict[str, contract.Route[Any]] = {
    "connection": contract.PRINTER_CONNECTION,
    "state": contract.PRINTER_STATE,
    "profile": contract.PRINTER_PROFILE,
    "temperature": contract.PRINTER_TEMPERATURE,
    "fans": contract.PRINTER_FANS,
    "heating": contract.PRINTER_HEATING,
    "job": contract.PRINTER_JOB,
    "layer_progress": contract.PRINTER_LAYER_PROGRESS,
}


@dataclass(frozen=True)
class Watch:
    """One subscription filter (relative to the root) and what its messages are."""

    kind: str
    filter: str
    route: RawRoute
    qos: int


def watches(me: str) -> list[Watch]:
    """Every filter the dashboard subscribes to, once, when the node starts."""
    host, sensors, camera = (contract.wildcard(c) for c in (contract.HOST, contract.SENSORS, contract.CAMERA))
    printer, coordinator = contract.wildcard(contract.PRINTER, me), contract.wildcard(contract.COORDINATOR)
    table: list[tuple[str, RawRoute, str]] = [
        ("status", contract.STATUS, contract.STATUS.filter(contract.wildcard())),
        ("host", contract.HOST_STATE, contract.HOST_STATE.filter(host)),
        ("shell", contract.HOST_COMMAND, contract.HOST_COMMAND.filter(host)),
        ("sensor", contract.SENSOR_STATE, contract.SENSOR_STATE.filter(sensors)),
        ("sensor_health", contract.SENSOR_HEALTH, contract.SENSOR_HEALTH.filter(sensors)),
        ("sensor_availability", contract.SENSOR_AVAILABILITY, contract.SENSOR_AVAILABILITY.filter(sensors)),
        ("camera_availability", contract.CAMERA_AVAILABILITY, contract.CAMERA_AVAILABILITY.filter(camera)),
        ("camera_last", contract.CAMERA_LAST_CAPTURE, contract.CAMERA_LAST_CAPTURE.filter(camera)),
        ("preview", contract.CAMERA_PREVIEW, contract.CAMERA_PREVIEW.filter(camera)),
        ("image", contract.CAMERA_IMAGE, contract.CAMERA_IMAGE.filter(camera)),
        ("coordinator", contract.COORDINATOR_STATE, contract.COORDINATOR_STATE.filter(coordinator, me)),
        ("capture", contract.COORDINATOR_CAPTURE, contract.COORDINATOR_CAPTURE.filter(coordinator, me)),
    ]
    table += [(f"printer.{name}", route, route.filter(printer)) for name, route in PRINTER_ROUTES.items()]
    return [Watch(kind, topic_filter, route, route.qos) for kind, route, topic_filter in table]


@dataclass(frozen=True)
class Seen:
    """A message placed: its kind, the node and component it came from, and the ``+`` names."""

    kind: str
    node: str
    component: str
    names: tuple[str, ...]


def classify(table: list[Watch], topic: str) -> Seen | None:
    """Which watch a relative topic belongs to (the first that matches), with its names."""
    for watch in table:
        if matches(watch.filter, topic):
            levels = topic.split("/")
            filt = watch.filter.split("/")
            names = tuple(level for level, f in zip(levels[2:], filt[2:], strict=False) if f == contract.ANY)
            return Seen(watch.kind, levels[0], levels[1], names)
    return None
