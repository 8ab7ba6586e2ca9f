"""The hold's side of the broker: its events and retained status out, the holders' wills in.

The 'held' event goes out twice, unchanged: on ``<node>/printer/event`` with every other
event, and alone on ``<node>/printer/held``, which coordinators share (an MQTT 5 shared
subscription) so each hold reaches exactly one of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from octoprint_printmesh.logic.telemetry import event_payload
from printmesh_core.models.base import now
from printmesh_core.models.printer import PrinterHold
from printmesh_core.mqtt import Message
from printmesh_core.node import NodeShell
from printmesh_core.topics import TopicError

log = logging.getLogger("octoprint.plugins.printmesh.hold")

Notify = Callable[[dict[str, Any]], None]


class HoldLink:
    def __init__(self, node: NodeShell, notify: Notify) -> None:
        self.node = node
        self.notify = notify  # the plugin's UI message
        self.on_holder_offline: Callable[[str], None] = lambda holder: None  # set to the driver's
        self._holders: set[str] = set()

    def event(self, name: str, payload: dict[str, Any]) -> None:
        """A hold event (holding, held, moved, released ...), from the driver's worker thread."""
        me = self.node.me
        event = event_payload(name, payload, now(), source="printmesh")
        self.node.runtime.publish(me.event, event, qos=1)
        if name == "held":
            self.node.runtime.publish(me.sub("held"), event, qos=1)

    def status(self, status: PrinterHold) -> None:
        self.node.runtime.publish(self.node.me.sub("hold"), status, qos=1, retain=True)
        self.notify({"hold": {"phase": status.phase, "layer": status.layer, "holder": status.holder}})

    def watch_holder(self, holder: str) -> str | None:
        """Follow the holder's status, so its last will releases the hold; an error text if invalid."""
        node, _, component = holder.partition("/")
        topics = self.node.topics
        try:
            topic = topics.absolute(topics.component(component, node).status)
        except TopicError as exc:
            return f"{holder!r} is not '<node_id>/<component>': {exc}"
        if holder not in self._holders:
            self._holders.add(holder)
            self.node.runtime.subscribe(topic, lambda message: self._holder_status(holder, message))
        return None

    def _holder_status(self, holder: str, message: Message) -> None:
        try:
            state = json.loads(message.payload).get("state")
        except (ValueError, AttributeError):
            state = message.payload.decode(errors="replace").strip()
        if state == "offline":
            log.info("holder %s went offline", holder)
            self.on_holder_offline(holder)
