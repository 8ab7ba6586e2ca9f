"""The mesh as the dashboard sees it: the last message of every topic it reads, parsed.

Pure: ``apply(topic, payload, at, retained)`` updates the state and returns the keys of
the sections that changed; nothing here knows about MQTT clients, threads or OctoPrint.
Messages are read leniently (``Route.read``): a newer agent's extra fields are ignored,
and an unreadable message changes nothing.

Presence comes from the retained ``<node>/<component>/status`` and its last will, and from
each sensor's and camera's retained availability. The will carries the process's start
time as ``ts``, so the time a source went offline is when the message arrived; a retained
offline found at start-up has no such time, and the source's last data time stands in.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from octoprint_printmesh.dashboard.watches import PRINTER_ROUTES, Seen, Watch, classify, watches
from printmesh_core import contract
from printmesh_core.contract import Unreadable
from printmesh_core.models.camera import CaptureResult
from printmesh_core.models.coordinator import CoordinatorState, LayerCapture
from printmesh_core.models.host import HostState, ShellResult
from printmesh_core.models.sensors import SensorHealth, SensorReading

Key = tuple[str, str]  # (node, name): a sensor, a camera, a shell command


@dataclass(frozen=True)
class Presence:
    online: bool
    since: float | None  # when it changed, if known
    reason: str | None = None


def presence_of(payload: bytes, at: float, retained: bool) -> Presence | None:
    seen = contract.read_presence(payload)
    if seen is None:
        return None
    online = seen.state == "online"
    if online or not retained:
        return Presence(online, at, seen.reason)
    # a retained offline: a clean shutdown stamped its own time; a last will stamped the start time
    return Presence(False, seen.ts if seen.reason == "shutdown" else None, seen.reason)


@dataclass
class Camera:
    availability: Presence | None = None
    last: CaptureResult | None = None
    preview_at: float | None = None


# Seconds between two preview images a page is told to fetch. Why not every preview the camera
# publishes: each fetch is an HTTP request OctoPrint serves, the largest part of the tab's cost
# on the OctoPrint host (bench/dashboard.py); the fetch still gets the newest frame.
PREVIEW_EVERY = 2.0


@dataclass
class MeshModel:
    """Everything the tab can show; the keys it returns name ``sections`` builders."""

    me: str
    table: list[Watch] = field(default_factory=list)
    presence: dict[Key, Presence] = field(default_factory=dict)  # (node, component)
    versions: dict[Key, str] = field(default_factory=dict)
    hosts: dict[str, HostState] = field(default_factory=dict)
    shells: dict[Key, ShellResult] = field(default_factory=dict)
    readings: dict[Key, SensorReading] = field(default_factory=dict)
    health: dict[Key, SensorHealth] = field(default_factory=dict)
    sensor_availability: dict[Key, Presence] = field(default_factory=dict)
    cameras: dict[Key, Camera] = field(default_factory=dict)
    printer: dict[str, Any] = field(default_factory=dict)  # PRINTER_ROUTES name -> model
    coordinator: CoordinatorState | None = None
    capture: LayerCapture | None = None
    coordinator_node: str | None = None

    def __post_init__(self) -> None:
        if not self.table:
            self.table = watches(self.me)

    def apply(self, topic: str, payload: bytes, at: float, retained: bool = False) -> set[str]:
        """One message (topic relative to the root); the section keys it changed."""
        seen = classify(self.table, topic)
        if seen is None:
            return set()
        try:
            return self._apply(seen, payload, at, retained)
        except Unreadable:
            return set()

    def _apply(self, seen: Seen, payload: bytes, at: float, retained: bool) -> set[str]:
        kind, node = seen.kind, seen.node
        name = seen.names[0] if seen.names else ""
        key = (node, name)
        if kind == "status":
            return self._status(seen, payload, at, retained)
        if not payload:  # a retained message cleared: the item is gone
            return self._forget(kind, node, key)
        if kind == "host":
            self.hosts[node] = contract.HOST_STATE.read(payload)
            return {f"host:{node}"}
        if kind == "shell":
            self.shells[key] = contract.HOST_COMMAND.read(payload)
            return {"shells"}
        if kind == "sensor":
            self.readings[key] = contract.SENSOR_STATE.read(payload)
        elif kind == "sensor_health":
            self.health[key] = contract.SENSOR_HEALTH.read(payload)
        elif kind == "sensor_availability":
            seen_presence = presence_of(payload, at, retained)
            if seen_presence is None:
                return set()
            self.sensor_availability[key] = seen_presence
        if kind.startswith("sensor"):
            return {f"sensor:{node}/{name}"}
        if kind.startswith("camera") or kind == "preview":
            return self._camera(kind, key, payload, at, retained)
        if kind.startswith("printer."):
            section = kind.split(".", 1)[1]
            self.printer[section] = PRINTER_ROUTES[section].read(payload)
            return set(PRINTER_SECTIONS[section])
        if kind == "coordinator":
            self.coordinator, self.coordinator_node = contract.COORDINATOR_STATE.read(payload), node
            return {"capture"}
        if kind == "capture":
            self.capture = contract.COORDINATOR_CAPTURE.read(payload)
            return {"capture"}
        return set()

    def _camera(self, kind: str, key: Key, payload: bytes, at: float, retained: bool) -> set[str]:
        camera = self.cameras.setdefault(key, Camera())
        if kind == "camera_availability":
            camera.availability = presence_of(payload, at, retained)
        elif kind == "camera_last":
            camera.last = contract.CAMERA_LAST_CAPTURE.read(payload)
        elif camera.preview_at is None or not 0 <= at - camera.preview_at < PREVIEW_EVERY:
            camera.preview_at = at
        else:
            return set()
        return {f"camera:{key[0]}/{key[1]}"}

    def _status(self, seen: Seen, payload: bytes, at: float, retained: bool) -> set[str]:
        source = (seen.node, seen.component)
        if not payload:
            self.presence.pop(source, None)
        else:
            seen_presence = presence_of(payload, at, retained)
            if seen_presence is None:
                return set()
            self.presence[source] = seen_presence
            with contextlib.suppress(Unreadable):  # a bare "offline" has no version
                self.versions[source] = contract.STATUS.read(payload).version
        return {"nodes", *self.sections_of(seen.node, seen.component)}

    def _forget(self, kind: str, node: str, key: Key) -> set[str]:
        if kind == "host":
            self.hosts.pop(node, None)
            return {f"host:{node}"}
        if kind == "shell":
            self.shells.pop(key, None)
            return {"shells"}
        if kind.startswith("sensor"):
            for table in (self.readings, self.health, self.sensor_availability):
                table.pop(key, None)
            return {f"sensor:{key[0]}/{key[1]}"}
        if kind.startswith("camera") or kind == "preview":
            self.cameras.pop(key, None)
            return {f"camera:{key[0]}/{key[1]}"}
        return set()

    def sections_of(self, node: str, component: str) -> set[str]:
        """The sections a component's presence shows in."""
        if component == contract.HOST:
            return {f"host:{node}"}
        if component == contract.SENSORS:
            return {f"sensor:{n}/{s}" for n, s in self.sensor_keys() if n == node}
        if component == contract.CAMERA:
            return {f"camera:{n}/{c}" for n, c in self.cameras if n == node}
        if component == contract.PRINTER and node == self.me:
            return {"printer", "heat", "job", "layer_times"}
        if component == contract.COORDINATOR and node == self.coordinator_node:
            return {"capture"}
        return set()

    def sensor_keys(self) -> set[Key]:
        return set(self.readings) | set(self.health) | set(self.sensor_availability)

    def section_keys(self) -> set[str]:
        """Every section that has something to show."""
        out = {"nodes", "printer", "heat", "job", "layer_times", "capture", "shells"}
        out |= {f"host:{n}" for n in self.hosts} | {f"host:{n}" for n, c in self.presence if c == contract.HOST}
        out |= {f"sensor:{n}/{s}" for n, s in self.sensor_keys()}
        out |= {f"camera:{n}/{c}" for n, c in self.cameras}
        return out

    def source(self, node: str, component: str) -> Presence | None:
        return self.presence.get((node, component))


PRINTER_SECTIONS: dict[str, tuple[str, ...]] = {
    "connection": ("printer",),
    "state": ("printer", "job"),
    "profile": ("printer", "capture"),
    "temperature": ("heat",),
    "fans": ("heat",),
    "heating": ("heat",),
    "job": ("job",),
    "layer_progress": ("job", "layer_times"),
}
