"""The MQTT side of the plugin, kept off OctoPrint's threads.

OctoPrint's comm and event threads only call the ``record_*`` methods, which put an item
on a bounded queue and return; one worker thread turns items into messages. paho's own
thread does the network I/O, and the runtime queues while the broker is away, so a down
or misconfigured broker never slows OctoPrint or the print.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from octoprint_printmesh.entities import PrinterShape, printer_entities, printer_shape
from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour
from octoprint_printmesh.holdcmds import HoldCommands
from octoprint_printmesh.holds import Effects, HoldDriver
from octoprint_printmesh.layers import scan_file
from octoprint_printmesh.logic.hold_types import Action, HolderOffline, HoldInput, ReleaseRequested, Tick
from octoprint_printmesh.logic.telemetry import (
    TemperaturePolicy,
    event_payload,
    profile_payload,
    temperatures_payload,
)
from octoprint_printmesh.pump import Pump, Snapshot
from octoprint_printmesh.settings import BridgeSettings
from printmesh_core import __version__
from printmesh_core.commands import Command, CommandServer
from printmesh_core.discovery import DiscoveryPublisher
from printmesh_core.models.base import Payload, now
from printmesh_core.models.layers import LayerEvent, LayerTable
from printmesh_core.models.printer import PrinterHold, PrinterProfile
from printmesh_core.mqtt import Message, MqttRuntime, Presence
from printmesh_core.topics import TopicError, Topics

log = logging.getLogger("octoprint.plugins.printmesh.bridge")

COMPONENT = "printer"
QUEUE_LIMIT = 10_000
TICK = 1.0  # seconds between telemetry snapshots
HOLD_TICK = 0.2  # seconds between hold deadline checks while a hold runs
SOON = 0.1  # seconds from a state-changing event to the telemetry tick that shows it
# Events that change nothing the telemetry tick reads: no early tick for them (ZChange fires on every z-hop).
QUIET_EVENTS = frozenset({"ZChange", "PositionUpdate", "Dwelling", "ChartMarked", "CaptureStart", "CaptureDone"})


Notify = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class PrinterIO:
    """The two OctoPrint calls a hold makes; the plugin binds them to its printer."""

    set_job_on_hold: Callable[[bool], None]
    send: Callable[[Sequence[str]], None]


class Bridge:
    def __init__(
        self,
        settings: BridgeSettings,
        notify: Notify,
        commands: list[Command] | None = None,
        printer: PrinterIO | None = None,
    ) -> None:
        self.settings = settings
        self.notify = notify
        self.topics = Topics(settings.topic_root, settings.node_id)
        self.me = self.topics.component(COMPONENT)
        client_id = settings.mqtt.client_id or f"printmesh-{settings.node_id}-{COMPONENT}"
        self.runtime = MqttRuntime(
            settings.mqtt, settings.topic_root, client_id, Presence(self.me.status, COMPONENT, __version__)
        )
        self.runtime.on_connected(self._connected)
        self.runtime.on_disconnected(self._disconnected)
        io = printer or PrinterIO(lambda on: None, lambda lines: None)
        effects = Effects(io.set_job_on_hold, io.send, self._hold_event, self._hold_status, self._handoff)
        self.holds = HoldDriver(settings.hold_config(secrets.token_hex(3)), effects)
        self._holders: set[str] = set()
        hold_commands = HoldCommands(
            self.holds, settings.permissions, self._profile, lambda fn: self._put(("call", fn)), self._watch_holder
        )
        self.server = CommandServer(
            self.runtime, self.topics, self.me, [*(commands or []), *hold_commands.commands()],
            dedupe_window=settings.commands.dedupe_window, workers=settings.commands.workers,
        )  # fmt: skip
        self.server.attach()  # before connecting: restored in every connect callback
        self.discovery = DiscoveryPublisher(
            self.runtime, settings.discovery, settings.node_id, COMPONENT, self.topics.absolute(self.me.status)
        )
        self.discovery.attach()  # announces on every connect and on HA's birth; clears stale configs
        self.discovery.on_birth(lambda: self._put(("reconnected", None)))  # HA restarted: its state again
        self._shape: PrinterShape | None = None
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue(QUEUE_LIMIT)
        self._worker = threading.Thread(target=self._run, name="printmesh-bridge", daemon=True)
        self.dropped = 0
        self.snapshot: Callable[[], Snapshot] | None = None  # set by the plugin; read-only calls
        policy = TemperaturePolicy(
            threshold=settings.publish.temperature_threshold, max_interval=settings.publish.temperature_interval
        )
        self.pump = Pump(self._retain, policy=policy, job_interval=settings.publish.job_interval)
        self._firmware: str | None = None
        self._ticked = 0.0
        self._retained: dict[str, Payload] = {}  # event-driven retained topics, republished on reconnect

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
        self._put(("event", (name, payload, now())))

    def record_fan(self, line: str) -> None:
        self._put(("fan", (line, now())))

    def record_layer(self, event: LayerEvent) -> None:
        self._put(("layer", event))

    def request_scan(
        self,
        path: str,
        disk_path: str,
        done: Callable[[str, LayerTable], None],
        flavour: Flavour = DEFAULT_FLAVOUR,
    ) -> None:
        """Scan a file for its layer table on the worker thread, then call ``done``."""
        self._put(("scan", (path, disk_path, done, flavour)))

    def feed_hold(self, event: HoldInput) -> None:
        """Queue a hold-machine input for the worker (from any thread but the comm thread's hooks)."""
        self._put(("call", lambda: self.holds.feed(event)))

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _handoff(self, actions: list[Action]) -> None:
        self._put(("actions", actions))

    # ---------------------------------------------------------- paho's thread
    def _connected(self) -> None:
        self.notify({"broker": "connected"})
        self._put(("reconnected", None))

    def _disconnected(self) -> None:
        """Nobody can move or release a hold without the broker: let the print go on."""
        self.notify({"broker": "disconnected"})
        self.feed_hold(ReleaseRequested(None, disarm=True, reason="broker_lost"))

    def _watch_holder(self, holder: str) -> str | None:
        """Follow the holder's status, so its last will releases the hold; an error text if invalid."""
        node, _, component = holder.partition("/")
        try:
            topic = self.topics.absolute(self.topics.component(component, node).status)
        except TopicError as exc:
            return f"{holder!r} is not '<node_id>/<component>': {exc}"
        if holder not in self._holders:
            self._holders.add(holder)
            self.runtime.subscribe(topic, lambda message: self._holder_status(holder, message))
        return None

    def _holder_status(self, holder: str, message: Message) -> None:
        try:
            state = json.loads(message.payload).get("state")
        except (ValueError, AttributeError):
            state = message.payload.decode(errors="replace").strip()
        if state == "offline":
            log.info("holder %s went offline", holder)
            self.feed_hold(HolderOffline(holder))

    # ------------------------------------------------------------ worker thread
    def _retain(self, topic: str, payload: Payload) -> None:
        self._retained[topic] = payload
        self.runtime.publish(self.me.sub(topic), payload, qos=1, retain=True)

    def _republish(self) -> None:
        """After a (re)connect: a restarted broker may have lost every retained message."""
        for topic, payload in list(self._retained.items()):
            self.runtime.publish(self.me.sub(topic), payload, qos=1, retain=True)
        self.holds.publish_status(force=True)

    def _hold_event(self, name: str, payload: dict[str, Any]) -> None:
        event = event_payload(name, payload, now(), source="printmesh")
        self.runtime.publish(self.me.event, event, qos=1)
        if name == "held":  # also alone on its own topic: coordinators share it (MQTT 5 shared subscription)
            self.runtime.publish(self.me.sub("held"), event, qos=1)

    def _hold_status(self, status: PrinterHold) -> None:
        self.runtime.publish(self.me.sub("hold"), status, qos=1, retain=True)
        self.notify({"hold": {"phase": status.phase, "layer": status.layer, "holder": status.holder}})

    def _profile(self) -> PrinterProfile | None:
        snap = self.snapshot() if self.snapshot is not None else None
        return profile_payload(snap.profile, now()) if snap is not None and snap.profile else None

    def _event(self, name: str, payload: dict[str, Any] | None, at: float) -> None:
        if self.settings.events_enabled and name not in self.settings.events_exclude:
            self.runtime.publish(self.me.event, event_payload(name, payload, at), qos=1)
        if name == "FirmwareData" and isinstance(payload, dict):
            self._firmware = str(payload.get("name") or "") or None
        elif name == "PrintStarted":
            self.pump.print_started(at)
        elif name in ("PrintDone", "PrintFailed", "PrintCancelled"):
            self.pump.print_ended(at)
        if name not in QUIET_EVENTS:  # state changes show within SOON, a burst costs one tick
            self._ticked = min(self._ticked, now() - TICK + SOON)

    def _with_firmware(self, snap: Snapshot) -> Snapshot:
        snap.firmware = snap.firmware or self._firmware
        return snap

    def _scan(
        self, path: str, disk_path: str, done: Callable[[str, LayerTable], None], flavour: Flavour = DEFAULT_FLAVOUR
    ) -> None:
        table = scan_file(disk_path, flavour=flavour).table.model_copy(update={"path": path})
        log.info("%s: %d layers from %s", path, table.total_layers, table.style or table.source)
        self._retain("layers", table)
        done(path, table)

    def _run(self) -> None:
        self.holds.publish_status(force=True)
        while True:
            try:
                item = self._queue.get(timeout=HOLD_TICK if self.holds.active else TICK)
            except queue.Empty:
                item = ("tick", None)
            if item is None:
                return
            try:
                self._handle(*item)
            except Exception:
                log.exception("could not handle %s", item[0])

    def _handle(self, kind: str, data: Any) -> None:
        if kind == "call":
            data()
        elif kind == "actions":
            self.holds.run(data)
        elif kind == "layer":
            self.runtime.publish(self.me.sub("layer"), data, qos=1)
            self.pump.layer(data, now())
        elif kind == "fan":
            self.pump.fan_line(*data)
        elif kind == "scan":
            self._scan(*data)
        elif kind == "event":
            self._event(*data)
        elif kind == "reconnected":
            self._republish()
            self._ticked = 0.0
        if self.holds.active:
            self.holds.feed(Tick())
        if now() - self._ticked >= TICK and self.snapshot is not None:
            self._ticked = now()
            snap = self._with_firmware(self.snapshot())
            self.pump.tick(snap, self._ticked, on_hold=self.holds.active)
            self._sync_entities(snap, self._ticked)

    def _sync_entities(self, snap: Snapshot, at: float) -> None:
        """Declare Home Assistant's entity set once the printer is known, and again when it changes."""
        profile = profile_payload(snap.profile, at) if snap.profile else None
        shape = printer_shape(profile, temperatures_payload(snap.temperatures, at), self.pump.fans.speeds)
        if shape != self._shape:
            self._shape = shape
            entities = printer_entities(self.topics, self.me, shape, allow_cancel=self.settings.allow_cancel)
            self.discovery.set_entities(entities)
