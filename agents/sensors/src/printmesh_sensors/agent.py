"""The sensor agent: one thread per sensor, a supervisor in the main loop, a ``read`` command.

Topics per sensor ``<name>`` (all retained, QoS 1):

* ``<node>/sensors/<name>/state``: a SensorReading, after each good read only;
* ``<node>/sensors/<name>/health``: a SensorHealth, after each read cycle;
* ``<node>/sensors/<name>/availability``: online/offline, on change.

Retained topics of sensors that are no longer configured are cleared, like the host
agent clears results of removed shell commands, so nothing stale lingers on the broker.
Every retained topic is published again on each (re)connect.
"""

from __future__ import annotations

import logging
import threading
import time

from printmesh_core import contract
from printmesh_core.agent import Agent
from printmesh_core.commands import Command, CommandFailed
from printmesh_core.discovery import Entity
from printmesh_core.models.sensors import ReadRequest, SensorHealth, SensorReading
from printmesh_core.mqtt import Message
from printmesh_sensors.config import SensorsSettings
from printmesh_sensors.drivers.base import ReadError
from printmesh_sensors.entities import SensorTopics, object_ids, sensor_entities
from printmesh_sensors.filters import Unconfirmed
from printmesh_sensors.runner import MAX_UNCONFIRMED, Busy, SensorRunner, Stopped

log = logging.getLogger("printmesh.sensors")

NOT_SENSORS = contract.COMPONENT_LEVELS  # levels of the agent itself, never a sensor
JOIN_TIMEOUT = 3.0  # a healthy read takes well under a second; a stuck one never ends


class _Publisher:
    """What the runners see of MQTT: three retained topics per sensor."""

    def __init__(self, agent: SensorsAgent) -> None:
        self.agent = agent

    def reading(self, sensor: str, reading: SensorReading) -> None:
        self.agent.publish_state(self.agent.relative[sensor].state, reading)

    def health(self, sensor: str, health: SensorHealth) -> None:
        self.agent.publish_state(self.agent.relative[sensor].health, health)

    def availability(self, sensor: str, online: bool, reason: str | None) -> None:
        self.agent.publish_availability(self.agent.relative[sensor].availability, online, reason)


class SensorsAgent(Agent):
    component = "sensors"

    def __init__(self, settings: SensorsSettings) -> None:
        self.config = settings.sensors
        super().__init__(settings)
        names = [s.name for s in self.config.sensors]
        self.relative = {n: SensorTopics(*(r.topic(self.me, n) for r in contract.SENSOR_RETAINED)) for n in names}
        publisher = _Publisher(self)
        unit = self.config.temperature_unit
        self.runners = {s.name: SensorRunner(s, unit, publisher, self.stopping) for s in self.config.sensors}
        self._oids = object_ids(names)

    # ------------------------------------------------------------------ MQTT
    def attach(self) -> None:
        for route in contract.SENSOR_RETAINED:
            self.runtime.subscribe_relative(route.filter(self.me), self._on_retained)
        # Availability is published on change only: after a broker restart without
        # persistence it would be gone, and HA would show working sensors unavailable.
        self.runtime.on_connected(self._on_reconnect)

    def _on_reconnect(self) -> None:
        if self.runtime.connect_count > 1:  # the first connect already sent the offline queue
            self._republish_state()

    def _on_retained(self, message: Message) -> None:
        """Clear what a sensor that is no longer configured left behind."""
        parts = (self.topics.relative(message.topic) or "").split("/")
        name = parts[-2] if len(parts) >= 2 else ""
        if message.payload and message.retain and name not in self.runners and name not in NOT_SENSORS:
            log.info("clearing retained %s of removed sensor %r", parts[-1], name)
            self.runtime.publish_absolute(message.topic, b"", qos=1, retain=True)

    def commands(self) -> list[Command]:
        text = "Read one sensor now; the reading or the error."
        return [Command(contract.READ.name, contract.READ.request, self._read, description=text)]

    def _read(self, request: ReadRequest) -> SensorReading:
        runner = self.runners.get(request.sensor)
        if runner is None:
            known = ", ".join(sorted(self.runners)) or "none"
            raise CommandFailed("unknown_sensor", f"no sensor named {request.sensor!r} (configured: {known})")
        try:
            try:
                for _ in range(MAX_UNCONFIRMED):
                    try:
                        return runner.attempt()
                    except Unconfirmed:
                        continue
                raise CommandFailed("unconfirmed", "the readings disagree with each other: nothing confirmed yet")
            finally:
                runner.publish_health()
        except ReadError as exc:
            raise CommandFailed("read_failed", f"{exc.kind}: {exc.message}") from None
        except Busy as exc:
            raise CommandFailed("busy", str(exc)) from None
        except Stopped:
            raise CommandFailed("stopping", "the agent is stopping") from None

    def entities(self) -> list[Entity]:
        out = []
        for sensor in self.config.sensors:
            rel = self.relative[sensor.name]
            absolute = SensorTopics(*(self.topics.absolute(t) for t in (rel.state, rel.health, rel.availability)))
            out += sensor_entities(
                sensor, self.config.temperature_unit, self._oids[sensor.name], self.settings.node_id, absolute
            )
        return out

    # ------------------------------------------------------------------ running
    def loop(self) -> None:
        if not self.runners:
            log.warning("no sensors configured (sensors.sensors is empty): nothing to read")
        self.announce(self.entities())  # before any state, like the host agent
        for runner in self.runners.values():
            runner.announce_starting()
        threads = [
            threading.Thread(target=r.run, name=f"sensor-{name}", daemon=True) for name, r in self.runners.items()
        ]
        for thread in threads:
            thread.start()
        intervals = [s.interval for s in self.config.sensors] or [1.0]
        tick = max(0.05, min(0.5, min(intervals) / 4))
        while not self.stopping.wait(tick):
            for runner in self.runners.values():
                try:
                    runner.supervise()
                except Exception:
                    log.exception("sensor %s: supervising failed", runner.name)
        self._shutdown(threads)

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s is stuck in its driver; leaving it behind", thread.name)
        for name, runner in self.runners.items():
            runner.close()
            self.publish_availability(self.relative[name].availability, False, "agent stopped")
