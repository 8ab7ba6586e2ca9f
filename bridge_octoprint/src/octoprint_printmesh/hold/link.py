"""The hold's side of the broker: its events and retained status out, the holders' wills in.

The 'held' event goes out twice, unchanged: on ``<node>/printer/event`` with every other
event, and alone on ``<node>/printer/held``, which coordinators share (an MQTT 5 shared
subscription) so each hold reaches exactly one of them. Topics and the holder's status
parser are the contract's (``PRINTER_EVENT``, ``PRINTER_HELD``, ``PRINTER_HOLD``, ``STATUS``).

With trusted holders (``commands.trusted_holders``), their status topics are the only
presence the bridge reads, subscribed from the start; a hold naming anyone else is refused
before any subscription, so a fake coordinator's ``offline`` reaches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from octoprint_printmesh.logic.telemetry import event_payload
from printmesh_core import contract
from printmesh_core.bounded import Bounded
from printmesh_core.models.base import now
from printmesh_core.models.printer import PrinterHold
from printmesh_core.models.status import Availability
from printmesh_core.mqtt import Message
from printmesh_core.node import NodeShell
from printmesh_core.topics import TopicError

log = logging.getLogger("octoprint.plugins.printmesh.hold")

Notify = Callable[[dict[str, Any]], None]
HOLDERS_KEPT = 16  # holders whose status we follow; the oldest one's subscription is dropped past it


class HoldLink:
    def __init__(self, node: NodeShell, notify: Notify, trusted: tuple[str, ...] = ()) -> None:
        self.node = node
        self.notify = notify  # the plugin's UI message
        self.on_holder_offline: Callable[[str], None] = lambda holder: None  # set to the driver's
        self.on_holder_online: Callable[[str], None] = lambda holder: None
        runtime = node.runtime
        # holder -> its status filter. Trusted holders (config) stay followed; with none trusted, each hold
        # request may name a new holder: the table is bounded and its oldest subscription dropped (the
        # current holder is always the most recent one, since a request replaces the plan)
        self._holders: Bounded[str, str] = Bounded(
            HOLDERS_KEPT + len(trusted),
            "bridge holders",
            runtime.evictions,
            lambda holder, topic_filter: runtime.unsubscribe(topic_filter),
        )
        self._trusted = frozenset(trusted)  # '<node>/coordinator'; empty: any holder a hold names
        self._offline: set[str] = set()  # trusted holders whose last status said offline
        for holder in trusted:
            self.watch_holder(holder)

    def event(self, name: str, payload: dict[str, Any]) -> None:
        """A hold event (holding, held, moved, released ...), from the driver's worker thread."""
        me, runtime = self.node.me, self.node.runtime
        event = event_payload(name, payload, now(), source="printmesh")
        contract.PRINTER_EVENT.publish(runtime, me, event)
        if name == contract.HELD:  # the same message: its body was built as a HoldStarted (hold/views.py)
            held = contract.PRINTER_HELD
            runtime.publish(held.topic(me), event, qos=held.qos, retain=held.retain)

    def status(self, status: PrinterHold) -> None:
        contract.PRINTER_HOLD.publish(self.node.runtime, self.node.me, status)
        self.notify({"hold": {"phase": status.phase, "layer": status.layer, "holder": status.holder}})

    def watch_holder(self, holder: str) -> str | None:
        """Follow the holder's status: its last will releases the hold, its ``online`` after a
        broker restart keeps the plan armed; an error text if invalid."""
        if self._trusted and holder not in self._trusted:
            return f"{holder!r} is not a holder this printer trusts ({', '.join(sorted(self._trusted))})"
        if holder in self._offline:
            return f"{holder!r} is offline"
        node, _, component = holder.partition("/")
        try:
            base = contract.component(self.node.topics, component, node)
        except TopicError as exc:
            return f"{holder!r} is not '<node_id>/<component>': {exc}"
        if self._holders.get(holder) is None:
            self._holders.put(holder, self.node.topics.absolute(contract.STATUS.filter(base)))
            contract.subscribe_presence(self.node.runtime, contract.STATUS, base, partial(self._holder_status, holder))
        return None

    def _holder_status(self, holder: str, presence: Availability, message: Message) -> None:
        """Read by the contract's one presence parser: extra fields are ignored, bare text accepted."""
        if presence.state == "offline":
            log.info("holder %s went offline (%s)", holder, presence.reason)
            if self._trusted:
                self._offline.add(holder)
            self.on_holder_offline(holder)
        else:  # after a reconnect, this is what keeps the plan armed (hold/outage.py)
            self._offline.discard(holder)
            self.on_holder_online(holder)
