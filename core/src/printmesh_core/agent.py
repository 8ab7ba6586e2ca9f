"""The process shell every agent shares: runtime, presence, commands, discovery, signals."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from printmesh_core import __version__
from printmesh_core.commands import Command, CommandServer
from printmesh_core.config import AgentSettings
from printmesh_core.discovery import DiscoveryPublisher, Entity
from printmesh_core.models.base import Payload
from printmesh_core.models.status import Availability
from printmesh_core.mqtt import MqttRuntime, Presence
from printmesh_core.topics import Topics

log = logging.getLogger("printmesh.agent")


class Agent:
    """Subclasses set ``component``, return their commands, and implement ``loop``."""

    component = "agent"

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.stopping = threading.Event()
        self.topics = Topics(settings.topic_root, settings.node_id)
        self.me = self.topics.component(self.component)
        client_id = settings.mqtt.client_id or f"printmesh-{settings.node_id}-{self.component}"
        presence = Presence(self.me.status, self.component, __version__)
        self.runtime = MqttRuntime(settings.mqtt, settings.topic_root, client_id, presence)
        self.discovery = DiscoveryPublisher(
            self.runtime, settings.discovery, settings.node_id, self.component, self.topics.absolute(self.me.status)
        )
        self.server = CommandServer(
            self.runtime,
            self.topics,
            self.me,
            self.commands(),
            dedupe_window=settings.commands.dedupe_window,
            workers=settings.commands.workers,
        )
        self._retained_cache: dict[str, Payload] = {}
        self._cache_lock = threading.Lock()

    # ----------------------------------------------------------- for subclasses
    def commands(self) -> list[Command]:
        return []

    def attach(self) -> None:
        """Add subscriptions before connecting (they are restored on every connect)."""

    def loop(self) -> None:
        """Run until ``self.stopping`` is set; wait on it rather than sleeping."""
        self.stopping.wait()

    def publish_state(self, topic: str, payload: Payload, qos: int = 1) -> None:
        """Publish retained state and remember it, to republish when HA comes back."""
        with self._cache_lock:
            self._retained_cache[topic] = payload
        self.runtime.publish(topic, payload, qos=qos, retain=True)

    def publish_availability(self, topic: str, online: bool, reason: str | None = None) -> None:
        """Retained availability of one item (a sensor, a camera); published only on change."""
        payload = Availability(state="online" if online else "offline", reason=None if online else reason)
        with self._cache_lock:
            previous = self._retained_cache.get(topic)
        if isinstance(previous, Availability) and previous.state == payload.state and previous.reason == payload.reason:
            return
        self.publish_state(topic, payload)

    def announce(self, entities: list[Entity]) -> None:
        self.discovery.set_entities(entities)

    # ------------------------------------------------------------------ running
    def _republish_state(self) -> None:
        with self._cache_lock:
            cached = list(self._retained_cache.items())
        for topic, payload in cached:
            self.runtime.publish(topic, payload, qos=1, retain=True)

    def _republish_after_connect(self) -> None:
        """Resend retained state, except what the offline queue has just sent."""
        flushed = self.runtime.flushed_on_connect
        with self._cache_lock:
            cached = list(self._retained_cache.items())
        for topic, payload in cached:
            if self.topics.absolute(topic) not in flushed:
                self.runtime.publish(topic, payload, qos=1, retain=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.server.attach()
        self.discovery.attach()
        self.discovery.on_birth(self._republish_state)
        # A broker restarted without persistence has lost our retained state: resend it.
        self.runtime.on_connected(self._republish_after_connect)
        self.attach()
        mq = self.settings.mqtt
        log.info(
            "%s agent for node %s, broker %s:%s (MQTT %s)",
            self.component,
            self.settings.node_id,
            mq.host,
            mq.port,
            mq.protocol,
        )
        self.runtime.start()
        try:
            self.loop()
        finally:
            self.server.close()
            self.runtime.stop()
            log.info("stopped")
        return 0


@dataclass(frozen=True)
class ComponentSpec:
    """What a distribution registers under the ``printmesh.components`` entry point group.

    ``add_arguments`` adds the component's own command-line options (the coordinator's
    ``--preview``); ``run_tool`` then gets the validated settings and the parsed options, and
    returns an exit status when an option asked for something other than running the agent,
    or None to run it.
    """

    name: str
    summary: str
    settings: type[AgentSettings]
    factory: Callable[[Any], Agent]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    run_tool: Callable[[Any, argparse.Namespace], int | None] | None = None
