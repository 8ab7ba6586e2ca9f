"""One component's presence on the broker: the pieces every printmesh process assembles.

Topics, the MQTT runtime with its retained status and last will, the command server,
Home Assistant discovery, and the cache of retained state that is sent again after a
reconnect or when Home Assistant comes back. The agents (``agent.Agent``) and the
OctoPrint bridge build on this one shell instead of each wiring its own, so a fix to
presence or republishing reaches every component at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from printmesh_core import __version__
from printmesh_core.commands import Command, CommandServer
from printmesh_core.config import AgentSettings
from printmesh_core.debounce import Debouncer
from printmesh_core.discovery import DiscoveryPublisher, Entity
from printmesh_core.models.base import Payload
from printmesh_core.models.status import Availability
from printmesh_core.mqtt import MqttRuntime, Presence
from printmesh_core.topics import Topics

STATUS_QUIET = 1.0  # s without a new eviction before the status is republished with the count
STATUS_LONGEST = 10.0  # s at most during a long flood


class NodeShell:
    """Build the shell, ``serve`` the commands, ``attach`` before ``runtime.start()``."""

    def __init__(self, settings: AgentSettings, component: str) -> None:
        self.component = component
        self.topics = Topics(settings.topic_root, settings.node_id)
        self.me = self.topics.component(component)
        client_id = settings.mqtt.client_id or f"printmesh-{settings.node_id}-{component}"
        presence = Presence(self.me.status, component, __version__)
        self.runtime = MqttRuntime(settings.mqtt, settings.topic_root, client_id, presence)
        self.discovery = DiscoveryPublisher(
            self.runtime, settings.discovery, settings.node_id, component, self.topics.absolute(self.me.status)
        )
        self._commands = settings.commands
        self._retained_cache: dict[str, Payload] = {}
        self._cache_lock = threading.Lock()
        # New eviction counts reach the retained status once per burst, not once per eviction.
        self._status_refresh = Debouncer(self._refresh_status, STATUS_QUIET, STATUS_LONGEST, f"{component}-status")
        self.runtime.evictions.on_change(self._status_refresh.trigger)

    def serve(self, commands: list[Command]) -> CommandServer:
        """The component's one dispatch table, on ``<node>/<component>/cmd``."""
        return CommandServer(
            self.runtime,
            self.topics,
            self.me,
            commands,
            dedupe_window=self._commands.dedupe_window,
            workers=self._commands.workers,
        )

    def wire(self, server: CommandServer, on_birth: Callable[[], None], on_connected: Callable[[], None]) -> None:
        """Subscribe the commands and discovery before connecting (restored on every connect).

        ``on_birth``: Home Assistant came back; ``on_connected``: every (re)connect.
        Both usually resend the retained state (``republish``).
        """
        server.attach()
        self.discovery.attach()  # announces on every connect and on HA's birth; clears stale configs
        self.discovery.on_birth(on_birth)
        self.runtime.on_connected(on_connected)

    # ---------------------------------------------------------- retained state
    def publish_state(self, topic: str, payload: Payload, qos: int = 1) -> None:
        """Publish retained state and remember it, to republish after a reconnect or HA's birth."""
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

    def _refresh_status(self) -> None:
        rt = self.runtime
        if rt.connected and rt.presence is not None:
            h = rt.health
            status = rt.presence.status("online", None, rt.dropped_total, h.rejected, h.failed, rt.evictions.total)
            rt.publish(rt.presence.topic, status, qos=1, retain=True)

    def close_node(self) -> None:
        """Stop the debouncing threads (births, status); call when the process stops."""
        self.discovery.close()
        self._status_refresh.close()

    def announce(self, entities: list[Entity]) -> None:
        self.discovery.set_entities(entities)

    def republish(self, skip_flushed: bool = False) -> None:
        """Resend the retained state: a restarted broker or HA may have lost it.

        ``skip_flushed``: leave out what the offline queue has just sent on connecting.
        """
        flushed = self.runtime.flushed_on_connect if skip_flushed else frozenset()
        with self._cache_lock:
            cached = list(self._retained_cache.items())
        for topic, payload in cached:
            if self.topics.absolute(topic) not in flushed:
                self.runtime.publish(topic, payload, qos=1, retain=True)
