"""The printer's node on the broker (core's ``NodeShell``) and the worker that feeds it.

OctoPrint's comm and event threads only call the ``record_*`` methods (and the hold
driver's named methods), which put an item on a bounded queue and return; one worker
thread turns items into messages and runs the hold's inputs. paho's own thread does the
network I/O, and the runtime queues while the broker is away, so a down or misconfigured
broker never slows OctoPrint or the print.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octoprint_printmesh.entities import PrinterShape, printer_entities, printer_shape
from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour
from octoprint_printmesh.hold.commands import HoldCommands
from octoprint_printmesh.hold.driver import Effects, HoldDriver
from octoprint_printmesh.hold.link import HoldLink
from octoprint_printmesh.layers import TableCache, scan_file, stamp_of
from octoprint_printmesh.logic import layer_batch
from octoprint_printmesh.logic.telemetry import TemperaturePolicy, event_payload, profile_payload, temperatures_payload
from octoprint_printmesh.outline_scan import OutlineScanner
from octoprint_printmesh.settings import BridgeSettings
from octoprint_printmesh.telemetry_publisher import Snapshot, TelemetryPublisher
from printmesh_core import contract
from printmesh_core.commands import Command
from printmesh_core.contract import Route
from printmesh_core.models.base import Payload, now
from printmesh_core.models.layers import LayerEvent, LayerTable
from printmesh_core.models.printer import PrinterProfile
from printmesh_core.node import NodeShell

log = logging.getLogger("octoprint.plugins.printmesh.bridge")

COMPONENT = contract.PRINTER
QUEUE_LIMIT = 10_000
TICK = 1.0  # seconds between telemetry snapshots
HOLD_TICK = 0.2  # seconds between wake-ups while a hold runs (its state shows in the telemetry)
SOON = 0.1  # seconds from a state-changing event to the telemetry tick that shows it
# Events that change nothing the telemetry tick reads: no early tick for them (ZChange fires on every z-hop).
QUIET_EVENTS = frozenset({"ZChange", "PositionUpdate", "Dwelling", "ChartMarked", "CaptureStart", "CaptureDone"})
READ_EVENTS = frozenset({"FirmwareData", "PrintStarted", *contract.PRINT_ENDINGS})  # the worker acts on these


Notify = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class PrinterIO:
    """The two OctoPrint calls a hold makes; the plugin binds them to its printer."""

    set_job_on_hold: Callable[[bool], None]
    send: Callable[[Sequence[str]], None]


class PrinterNode:
    """The bridge's node: the shared shell, the hold, the telemetry, and the one worker thread."""

    def __init__(
        self,
        settings: BridgeSettings,
        notify: Notify,
        commands: list[Command] | None = None,
        printer: PrinterIO | None = None,
        data_folder: Path | None = None,
    ) -> None:
        self.settings = settings
        self.notify = notify
        self.node = NodeShell(settings, COMPONENT)
        self.topics, self.me, self.runtime = self.node.topics, self.node.me, self.node.runtime
        self.runtime.on_disconnected(self._disconnected)
        io = printer or PrinterIO(lambda on: None, lambda lines: None)
        link = HoldLink(self.node, notify, settings.permissions.holders)
        if not settings.permissions.holders:
            log.warning(
                "no trusted coordinators (commands.trusted_holders): a hold may name any holder, and only "
                "the broker's ACL decides who holds, moves and releases this printer (docs/security.md)"
            )
        failed = self.runtime.health.fail
        effects = Effects(io.set_job_on_hold, io.send, link.event, link.status,
                          lambda what, exc: failed(f"bridge {what}", f"bridge {what}", exc))  # fmt: skip
        self.holds = HoldDriver(settings.hold_config(secrets.token_hex(3)), effects)
        link.on_holder_offline, link.on_holder_online = self.holds.holder_offline, self.holds.holder_online
        hold_commands = HoldCommands(self.holds, settings.permissions, self._profile, link.watch_holder)
        self.server = self.node.serve([*(commands or []), *hold_commands.commands()])
        self.discovery = self.node.discovery
        # HA restarted, or a (re)connect: publish the state again, from the worker
        self.node.wire(self.server, on_birth=lambda: self._put(("reconnected", None)), on_connected=self._connected)
        self._shape: PrinterShape | None = None
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(QUEUE_LIMIT)
        self._worker = threading.Thread(target=self._run, name="printmesh-bridge", daemon=True)
        self.dropped = 0
        self.snapshot: Callable[[], Snapshot] | None = None  # set by the plugin; read-only calls
        policy = TemperaturePolicy(
            threshold=settings.publish.temperature_threshold, max_interval=settings.publish.temperature_interval
        )
        self.telemetry = TelemetryPublisher(self._retain, policy=policy, job_interval=settings.publish.job_interval)
        # quiet events left out of the stream are dropped before the queue: no wake-up of the worker
        # for each z-hop's ZChange
        unread = set(QUIET_EVENTS) - READ_EVENTS
        self._skipped = frozenset(unread if not settings.events_enabled else unread & set(settings.events_exclude))
        self._firmware: str | None = None
        self._ticked = 0.0
        self.tables = TableCache()  # scanned at selection, read by the layer follower at the first line
        folder = data_folder / "outlines" if data_folder is not None else None  # scanned in a child, kept on disk
        self.outlines = OutlineScanner(lambda outlines: self._put(("outlines", outlines)), folder)
        self._layers = layer_batch.LayerBatch(settings.publish.layer_interval)  # worker thread only

    def start(self) -> None:
        self.holds.start()
        self._worker.start()
        self.outlines.start()
        self.runtime.start()  # connects in paho's thread; never blocks the caller

    def stop(self) -> None:
        self._queue.put(None)
        self.outlines.stop()
        self._worker.join(5)
        self.holds.stop()
        self.server.close()
        self.node.close_node()
        self.runtime.stop()

    # ------------------------------------------ called from OctoPrint's threads
    def record_event(self, name: str, payload: dict[str, Any] | None) -> None:
        if name not in self._skipped:
            self._put(("event", (name, payload, now())))

    def record_fan(self, line: str) -> None:
        self._put(("fan", (line, now())))

    def record_layer(self, event: LayerEvent) -> None:
        self._put(("layer", event))

    def at_layer(self, event: LayerEvent, line: str) -> bool:
        """Comm thread: the hold's decision at a layer start; a hold sends the waiting layers at once."""
        held = self.holds.at_layer(event, line)
        if held:
            self._put(("flush", None))
        return held

    def request_scan(
        self,
        path: str,
        disk_path: str,
        done: Callable[[str, LayerTable], None],
        flavour: Flavour = DEFAULT_FLAVOUR,
        publish: bool = True,
    ) -> None:
        """Scan a file for its layer table on the worker thread (unless the cache has this
        version of it), then call ``done``; ``publish``: it is the print's table (retained)."""
        self._put(("scan", (path, disk_path, done, flavour, publish)))

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    # ---------------------------------------------------------- paho's thread
    def _connected(self) -> None:
        self.notify({"broker": "connected"})
        self.holds.broker_back()  # queued before the holder's retained status, which follows the subscription
        self._put(("reconnected", None))

    def _disconnected(self) -> None:
        self.notify({"broker": "disconnected"})
        self.holds.broker_lost()

    # ------------------------------------------------------------ worker thread
    def _retain(self, route: Route[Any], payload: Payload) -> None:
        """Event-driven retained state under ``<node>/printer/``, republished on reconnect."""
        self.node.publish_state(route.topic(self.me), payload, qos=route.qos)

    def _republish(self) -> None:
        """After a (re)connect: a restarted broker may have lost every retained message."""
        self.node.republish()
        self.holds.reconnected()

    def _profile(self) -> PrinterProfile | None:
        snap = self.snapshot() if self.snapshot is not None else None
        return profile_payload(snap.profile, now()) if snap is not None and snap.profile else None

    def _event(self, name: str, payload: dict[str, Any] | None, at: float) -> None:
        if self.settings.events_enabled and name not in self.settings.events_exclude:
            contract.PRINTER_EVENT.publish(self.runtime, self.me, event_payload(name, payload, at))
        if name == "FirmwareData" and isinstance(payload, dict):
            self._firmware = str(payload.get("name") or "") or None
        elif name == "PrintStarted":
            self.telemetry.print_started(at)
        elif name in contract.PRINT_ENDINGS:
            self.telemetry.print_ended(at)
        if name not in QUIET_EVENTS:  # state changes show within SOON, a burst costs one tick
            self._ticked = min(self._ticked, now() - TICK + SOON)

    def _with_firmware(self, snap: Snapshot) -> Snapshot:
        snap.firmware = snap.firmware or self._firmware
        return snap

    def _scan(
        self,
        path: str,
        disk_path: str,
        done: Callable[[str, LayerTable], None],
        flavour: Flavour = DEFAULT_FLAVOUR,
        publish: bool = True,
    ) -> None:
        table = self._table(path, disk_path, flavour)
        if table is None:
            return
        if publish:
            self._retain(contract.PRINTER_LAYERS, table)
        # printer/outlines, for the print watch: read now (a selected file's kept for its print), published at the start
        self.outlines.request(path, disk_path, table, flavour, deliver=publish)
        done(path, table)

    def _table(self, path: str, disk_path: str, flavour: Flavour) -> LayerTable | None:
        """The cached table of this version of the file, else a fresh scan (then cached)."""
        stamp = stamp_of(disk_path)
        if stamp is None:
            log.warning("%s: cannot read %s for its layers", path, disk_path)
            return None
        table = self.tables.get(disk_path, flavour, stamp)
        if table is None or table.path != path:
            table = scan_file(disk_path, flavour=flavour).table.model_copy(update={"path": path})
            marked = ", marked" if table.marked else ""
            log.info("%s: %d layers from %s%s", path, table.total_layers, table.style or table.source, marked)
            if stamp_of(disk_path) == stamp:  # not rewritten while it was read
                self.tables.put(disk_path, stamp, flavour, table)
        return table

    def _run(self) -> None:
        while True:
            wait, due = HOLD_TICK if self.holds.active else TICK, self._layers.due
            if due is not None:
                wait = min(wait, max(0.0, due - time.monotonic()))
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = ("tick", None)
            if item is None:
                self._send_layers(*layer_batch.flush(self._layers, time.monotonic()))
                return
            try:
                self._handle(*item)
            except Exception as exc:  # counted in the status (failed) and logged at a bounded rate
                self.runtime.health.fail(f"bridge worker, {item[0]}", f"bridge worker ({item[0]})", exc)

    def _send_layers(self, batch: layer_batch.LayerBatch, layers: tuple[LayerEvent, ...]) -> None:
        self._layers = batch
        for event in layers:
            contract.PRINTER_LAYER.publish(self.runtime, self.me, event)

    def _handle(self, kind: str, data: Any) -> None:
        at = time.monotonic()
        if kind == "layer":
            self._send_layers(*layer_batch.offer(self._layers, data, at))
            self.telemetry.layer(data, now())
        elif kind == "tick":
            self._send_layers(*layer_batch.due_flush(self._layers, at))
        else:  # whatever this item sends goes after the layers that started before it
            self._send_layers(*layer_batch.flush(self._layers, at))
        if kind == "fan":
            self.telemetry.fan_line(*data)
        elif kind == "scan":
            self._scan(*data)
        elif kind == "outlines":
            self._retain(contract.PRINTER_OUTLINES, data)
        elif kind == "event":
            self._event(*data)
        elif kind == "reconnected":
            self._republish()
            self._ticked = 0.0
        if now() - self._ticked >= TICK and self.snapshot is not None:
            self._ticked = now()
            self._send_layers(*layer_batch.flush(self._layers, at))  # the telemetry's layer comes after them
            snap = self._with_firmware(self.snapshot())
            self.telemetry.tick(snap, self._ticked, on_hold=self.holds.active)
            self._sync_entities(snap, self._ticked)

    def _sync_entities(self, snap: Snapshot, at: float) -> None:
        """Declare Home Assistant's entity set once the printer is known, and again when it changes."""
        profile = profile_payload(snap.profile, at) if snap.profile else None
        shape = printer_shape(profile, temperatures_payload(snap.temperatures, at), self.telemetry.fans.speeds)
        if shape != self._shape:
            self._shape = shape
            entities = printer_entities(self.topics, self.me, shape, allow_cancel=self.settings.allow_cancel)
            self.node.announce(entities)
