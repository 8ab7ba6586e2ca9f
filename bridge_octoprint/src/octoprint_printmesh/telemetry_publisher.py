"""Turning OctoPrint's in-memory state into retained telemetry, on the bridge's worker thread.

The plugin hands over a ``snapshot()`` callable that only reads OctoPrint's current data
(no I/O, no waiting); this module decides what changed and what to publish, using the
pure functions in ``logic``. Its retained topics under ``<node>/printer/`` are the contract's
``PRINTER_*`` routes (connection, state, profile, temperature, heating, fans, job, layer_progress).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from octoprint_printmesh.logic import fans as fan_logic
from octoprint_printmesh.logic import layer_progress as layer_logic
from octoprint_printmesh.logic.eta import EtaSettings, HeaterHistory, update_all
from octoprint_printmesh.logic.fans import Fans, FanSettings
from octoprint_printmesh.logic.telemetry import (
    TemperaturePolicy,
    connection_payload,
    job_payload,
    profile_payload,
    should_publish_temperatures,
    state_payload,
    temperatures_payload,
)
from printmesh_core import contract
from printmesh_core.contract import Route
from printmesh_core.models.base import Payload
from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import PrinterTemperatures

Publish = Callable[[Route[Any], Payload], None]  # (the contract's route under printer/, payload), retained


@dataclass
class Snapshot:
    data: Mapping[str, Any]  # printer.get_current_data()
    temperatures: Mapping[str, Any]  # printer.get_current_temperatures()
    connection: tuple[Any, ...]  # printer.get_current_connection()
    profile: Mapping[str, Any]  # printer profile manager's current profile
    firmware: str | None = None


@dataclass
class TelemetryPublisher:
    publish: Publish
    policy: TemperaturePolicy = field(default_factory=TemperaturePolicy)
    job_interval: float = 5.0
    progress_interval: float = 1.0  # layer_progress at most this often; the tick sends the latest
    _last: dict[Route[Any], str] = field(default_factory=dict)  # route -> last JSON without ts
    _temps: PrinterTemperatures | None = None
    _job_at: float = 0.0
    started_at: float | None = None
    track: layer_logic.LayerTrack = field(default_factory=layer_logic.start_print)
    eta_settings: EtaSettings = field(default_factory=EtaSettings)
    fan_settings: FanSettings = field(default_factory=FanSettings)
    _heat: dict[str, HeaterHistory] = field(default_factory=dict)
    fans: Fans = field(default_factory=Fans.empty)
    _progress_at: float = float("-inf")
    _progress_due: bool = False

    def _changed(self, route: Route[Any], payload: Payload) -> None:
        """Publish when the content differs from the last message on that topic."""
        body = payload.model_dump_json(exclude={"ts"})
        if self._last.get(route) != body:
            self._last[route] = body
            self.publish(route, payload)

    def tick(self, snap: Snapshot, now: float, *, on_hold: bool = False) -> None:
        if self._progress_due:
            self._progress(now)
        self._changed(contract.PRINTER_CONNECTION, connection_payload(snap.connection, snap.firmware, now))
        self._changed(contract.PRINTER_STATE, state_payload(snap.data, now, on_hold=on_hold))
        if snap.profile:
            self._changed(contract.PRINTER_PROFILE, profile_payload(snap.profile, now))
        temps = temperatures_payload(snap.temperatures, now)
        if should_publish_temperatures(self._temps, temps, now, self.policy):
            self._temps = temps
            self.publish(contract.PRINTER_TEMPERATURE, temps)
        self._heat, heating, _ = update_all(self._heat, temps, now, self.eta_settings)
        self._changed(contract.PRINTER_HEATING, heating)
        job = job_payload(snap.data, now, self.started_at)
        if now - self._job_at >= self.job_interval or self._last.get(contract.PRINTER_JOB) is None:
            self._job_at = now
            self._last[contract.PRINTER_JOB] = job.model_dump_json(exclude={"ts"})
            self.publish(contract.PRINTER_JOB, job)

    def fan_line(self, line: str, now: float) -> None:
        """An M106/M107 line that was sent to the printer."""
        self.fans = fan_logic.feed(self.fans, line, now, self.fan_settings)
        self._changed(contract.PRINTER_FANS, fan_logic.fans_payload(self.fans, now))

    def print_started(self, now: float) -> None:
        self.started_at = now
        self.track = layer_logic.start_print()
        self._progress(now)

    def layer(self, event: LayerEvent, now: float) -> None:
        """A layer reached. Its ``layer_progress`` is retained state for displays: a burst of short
        layers (a small part's top, a test print) sends one per ``progress_interval``, the latest at
        the next tick. ``printer/layer`` carries every layer, exactly."""
        self.track = layer_logic.on_layer_event(self.track, event, now)
        if now - self._progress_at >= self.progress_interval:
            self._progress(now)
        else:
            self._progress_due = True

    def print_ended(self, now: float) -> None:
        self.track = layer_logic.finish(self.track, now)
        self._progress(now)
        self._job_at = 0.0  # publish the final job state at the next tick

    def _progress(self, now: float) -> None:
        self._progress_at, self._progress_due = now, False
        self.publish(contract.PRINTER_LAYER_PROGRESS, layer_logic.layers_payload(self.track, now))
