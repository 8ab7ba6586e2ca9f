"""The MQTT side of the plugin, kept off OctoPrint's threads.

OctoPrint's comm and event threads only call the ``record_*`` methods, which put an item
on a bounded queue and return; one worker thread turns items into messages. paho's own
thread does the network I/O, and the runtime queues while the broker is away, so a down
or misconfigured broker never slows OctoPrint or the print.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from octoprint_printmesh.layers import scan_file
from octoprint_printmesh.logic.telemetry import event_payload
from octoprint_printmesh.pump import Pump, Snapshot
from octoprint_printmesh.settings import BridgeSettings
from printmesh_core import __version__
from printmesh_core.commands import Command, CommandServer
from printmesh_core.models.base import now
from printmesh_core.models.layers import LayerEvent, LayerTable
from printmesh_core.mqtt import MqttRuntime, Presence
from printmesh_core.topics import Topics

log = logging.getLogger("octoprint.plugins.printmesh.bridge")

COMPONENT = "printer"
QUEUE_LIMIT = 10_000
TICK = 1.0  # seconds between telemetry snapshots


Notify = Callable[[dict[str, Any]], None]


class Bridge:
    def __init__(self, settings: BridgeSettings, notify: Notify, commands: list[Command] | None = None) -> None:
        self.settings = settings
        self.notify = notify
        self.topics = Topics(settings.topic_root, settings.node_id)
        self.me = self.topics.component(COMPONENT)
        client_id = settings.mqtt.client_id or f"printmesh-{settings.node_id}-{COMPONENT}"
        self.runtime = MqttRuntime(
            settings.mqtt, settings.topic_root, client_id, Presence(self.me.status, COMPONENT, __version__)
        )
        self.runtime.on_connected(lambda: self.notify({"broker": "connected"}))
        self.runtime.on_disconnected(lambda: self.notify({"broker": "disconnected"}))
        self.server = CommandServer(
            self.runtime, self.topics, self.me, commands or [],
            dedupe_window=settings.commands.dedupe_window, workers=settings.commands.workers,
        )  # fmt: skip
        self.server.attach()  # before connecting: restored in every connect callback
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(QUEUE_LIMIT)
        self._worker = threading.Thread(target=self._run, name="printmesh-bridge", daemon=True)
        self.dropped = 0
        self.snapshot: Callable[[], Snapshot] | None = None  # set by the plugin; read-only calls
        self.pump = Pump(lambda topic, payload: self.runtime.publish(self.me.sub(topic), payload, qos=1, retain=True))
        self._firmware: str | None = None
        self._ticked = 0.0

    def start(self) -> None:
        self._worker.start()
        self.runtime.start()  # connects in paho's thread; never blocks the caller

    def stop(self) -> None:
        self._queue.put(None)
        self._worker.join(5)
        self.server.close()
        self.runtime.stop()

    # ------------------------------------------ called from OctoPrint's threads
    def record_event(self, name: str, payload: dict[str, Any] | None) -> None:
        if not self.settings.events_enabled or name in self.settings.events_exclude:
            return  # (telemetry that depends on events still follows through the tick)
        self._put(("event", (name, payload, now())))

    def record_fan(self, line: str) -> None:
        self._put(("fan", (line, now())))

    def record_layer(self, event: LayerEvent) -> None:
        self._put(("layer", event))

    def request_scan(self, path: str, disk_path: str, done: Callable[[str, LayerTable], None]) -> None:
        """Scan a file for its layer table on the worker thread, then call ``done``."""
        self._put(("scan", (path, disk_path, done)))

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    # ------------------------------------------------------------ worker thread
    def _event(self, name: str, payload: dict[str, Any] | None, at: float) -> None:
        self.runtime.publish(self.me.event, event_payload(name, payload, at), qos=1)
        if name == "FirmwareData" and isinstance(payload, dict):
            self._firmware = str(payload.get("name") or "") or None
        elif name == "PrintStarted":
            self.pump.print_started(at)
        elif name in ("PrintDone", "PrintFailed", "PrintCancelled"):
            self.pump.print_ended(at)
        self._ticked = 0.0  # state changes show at once

    def _with_firmware(self, snap: Snapshot) -> Snapshot:
        snap.firmware = snap.firmware or self._firmware
        return snap

    def _scan(self, path: str, disk_path: str, done: Callable[[str, LayerTable], None]) -> None:
        table = scan_file(disk_path).table.model_copy(update={"path": path})
        log.info("%s: %d layers from %s", path, table.total_layers, table.style or table.source)
        self.runtime.publish(self.me.sub("layers"), table, qos=1, retain=True)
        done(path, table)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=TICK)
            except queue.Empty:
                item = ("tick", None)
            if item is None:
                return
            kind, data = item
            try:
                if kind == "layer":
                    self.runtime.publish(self.me.sub("layer"), data, qos=1)
                    self.pump.layer(data, now())
                elif kind == "fan":
                    self.pump.fan_line(*data)
                elif kind == "scan":
                    self._scan(*data)
                elif kind == "event":
                    self._event(*data)
                if now() - self._ticked >= TICK and self.snapshot is not None:
                    self._ticked = now()
                    self.pump.tick(self._with_firmware(self.snapshot()), self._ticked)
            except Exception:
                log.exception("could not publish %s", kind)
