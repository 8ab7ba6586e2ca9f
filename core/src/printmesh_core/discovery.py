"""Home Assistant MQTT discovery: build entity configs and keep the broker's copy in sync.

Burned peers lost entities after HA restarts, duplicated unique ids, and left stale
entities behind. So: configs are re-announced on every connect and on HA's birth
message, unique ids derive from node + component + object, and any retained config of
ours that is no longer wanted (metric switched off, discovery disabled) is cleared.

HA's birth is debounced (``Debouncer``): a burst of births, however long, gives one
re-announce and one republish, ``birth_quiet`` s after the last birth and at most
``birth_longest`` s after the first. The configs of ours seen on the broker are kept in a
bounded table, and each one is judged on arrival in O(1).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from printmesh_core import __version__
from printmesh_core.bounded import Bounded
from printmesh_core.config import DiscoveryConfig
from printmesh_core.debounce import Debouncer
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import DiscoveryTopics, ha_id

log = logging.getLogger("printmesh.discovery")

AVAILABLE = "online"
NOT_AVAILABLE = "offline"
SEEN_CAP = 4096  # retained configs of ours remembered before our wanted set is known
SUPPORT_URL = "https://github.com/printmesh/printmesh"
DIAGNOSTIC = {"entity_category": "diagnostic"}  # health entities: HA lists them apart from the controls


def origin_block() -> dict[str, str]:
    """Who made the discovery config; HA shows it in the entity's and device's details and logs."""
    return {"name": "printmesh", "sw_version": __version__, "support_url": SUPPORT_URL}


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity. ``name`` is the entity's own name, without the device name."""

    platform: str
    object_id: str
    name: str | None
    options: dict[str, Any] = field(default_factory=dict)
    extra_availability: tuple[str, ...] = ()  # absolute status topics, all must be online

    @property
    def key(self) -> tuple[str, str]:
        return self.platform, ha_id(self.object_id)


def device_block(node_id: str) -> dict[str, Any]:
    """One HA device per node: every printmesh component on a machine shows up together."""
    return {
        "identifiers": [f"printmesh_{ha_id(node_id)}"],
        "name": node_id,
        "manufacturer": "printmesh",
        "model": "printmesh node",
        "sw_version": __version__,
    }


def entity_config(entity: Entity, node_id: str, component: str, status_topic: str) -> dict[str, Any]:
    availability = [
        {"topic": t, "value_template": "{{ value_json.state }}"} for t in (status_topic, *entity.extra_availability)
    ]
    config: dict[str, Any] = {
        "name": entity.name,
        "unique_id": f"printmesh_{ha_id(node_id)}_{component}_{ha_id(entity.object_id)}",
        "object_id": ha_id(f"{node_id}_{entity.object_id}"),
        "device": device_block(node_id),
        "origin": origin_block(),
        "availability": availability,
        "availability_mode": "all",
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
    }
    config.update(entity.options)
    return config


class DiscoveryPublisher:
    def __init__(
        self,
        runtime: MqttRuntime,
        config: DiscoveryConfig,
        node_id: str,
        component: str,
        status_topic: str,
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.node_id = node_id
        self.component = component
        self.status_topic = status_topic  # absolute
        self.topics = DiscoveryTopics(config.prefix, node_id, component)
        self._entities: dict[tuple[str, str], Entity] | None = None  # None until the agent knows its set
        # retained configs of ours on the broker (bounded: anybody may publish under our prefix)
        self._seen: Bounded[str, tuple[str, str]] = Bounded(SEEN_CAP, "discovery configs", runtime.evictions)
        self._lock = threading.Lock()
        self._birth_hooks: list[Callable[[], None]] = []
        self.births = Debouncer(self._reannounce, config.birth_quiet, config.birth_longest, f"{component}-birth")

    def attach(self) -> None:
        """Subscribe before connecting, so everything is restored inside the connect callback."""
        self.runtime.subscribe(self.topics.own_configs_filter, self._on_own_config, qos=1)
        if self.config.enabled:
            self.runtime.subscribe(self.topics.birth, self._on_birth, qos=1)
            self.runtime.on_connected(self.announce)

    def on_birth(self, hook: Callable[[], None]) -> None:
        """Run after re-announcing on HA's birth, e.g. to republish retained state."""
        self._birth_hooks.append(hook)

    def set_entities(self, entities: list[Entity]) -> None:
        """Declare the complete wanted set; announces it and clears what is no longer in it."""
        with self._lock:
            changed = self._entities is None or set(self._entities) != {e.key for e in entities}
            self._entities = {e.key: e for e in entities}
        if changed:
            if self.runtime.connected:  # otherwise the connect hook announces
                self.announce()
            self._collect_garbage()

    def announce(self) -> None:
        if not self.config.enabled:
            return
        with self._lock:
            entities = list((self._entities or {}).values())
        for entity in entities:
            payload = entity_config(entity, self.node_id, self.component, self.status_topic)
            self.runtime.publish_absolute(self.topics.config(*entity.key), json.dumps(payload), qos=1, retain=True)

    def _wanted(self, key: tuple[str, str]) -> bool:
        return self.config.enabled and self._entities is not None and key in self._entities

    def _on_own_config(self, message: Message) -> None:
        """O(1) per message: once the wanted set is known, only this config is judged."""
        key = self.topics.parse_config_topic(message.topic)
        if key is None:
            return
        with self._lock:
            if not message.payload:
                self._seen.pop(message.topic)
                return
            if self._entities is None and self.config.enabled:
                self._seen.put(message.topic, key)  # judged by ``_collect_garbage`` once the set is known
                return
            if self._wanted(key):
                self._seen.put(message.topic, key)
                return
            self._seen.pop(message.topic)
        log.info("clearing stale discovery config %s", message.topic)
        self.runtime.publish_absolute(message.topic, b"", qos=1, retain=True)

    def _collect_garbage(self) -> None:
        with self._lock:
            if self._entities is None and self.config.enabled:
                return  # wanted set not known yet: clearing now would make entities flap
            stale = [t for t in self._seen if not self._wanted(self._seen.peek(t) or ("", ""))]
            for topic in stale:
                self._seen.pop(topic, None)
        for topic in stale:
            log.info("clearing stale discovery config %s", topic)
            self.runtime.publish_absolute(topic, b"", qos=1, retain=True)

    def _on_birth(self, message: Message) -> None:
        """Network thread: only noted; ``_reannounce`` runs once the burst of births is over."""
        if message.payload.strip().lower() == AVAILABLE.encode():
            self.births.trigger()

    def _reannounce(self) -> None:
        log.info("Home Assistant came online: announcing discovery again (%d births so far)", self.births.triggers)
        self.announce()
        for hook in list(self._birth_hooks):
            hook()

    def close(self) -> None:
        self.births.close()
