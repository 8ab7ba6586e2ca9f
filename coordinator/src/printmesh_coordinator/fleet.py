"""The shell of ``ownership.py``: the group's statuses and fleet messages in, owners out, our share published.

Every coordinator's fleet message is read; the status of those of our group is followed
(``ownership.Follow``). Inputs come from the network thread (statuses, fleet messages, the bridges' hold status and
state through the ``Link``, our own connects and disconnects) and from the agent's loop
(``tick``, at least every ``IDLE_WAIT``); one lock keeps them in order. Each printer's owner
goes to its machine as ``OwnerSeen`` through the agent's inbox, so the machine, not this
thread, decides what arming means. Our ``fleet`` message is retained, republished after a
reconnect like every retained state, and lists the printers we own: ``mosquitto_sub -t
'printmesh/+/coordinator/fleet'`` shows the whole group's split.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial

from printmesh_coordinator import ownership as rules
from printmesh_coordinator.config import CoordinatorSection
from printmesh_coordinator.link import Deliver, Link
from printmesh_coordinator.messages import OwnerSeen
from printmesh_core import contract
from printmesh_core.models.coordinator import CoordinatorFleet
from printmesh_core.models.status import Availability
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import ComponentTopics, Topics

log = logging.getLogger("printmesh.coordinator.fleet")

Publish = Callable[[str, CoordinatorFleet], None]  # relative topic, payload: the agent's publish_state


class Fleet:
    def __init__(
        self,
        runtime: MqttRuntime,
        topics: Topics,
        me: ComponentTopics,
        section: CoordinatorSection,
        clock: Callable[[], float],
        deliver: Deliver,
        publish: Publish,
    ) -> None:
        self.runtime = runtime
        self.topics = topics
        self.me = me
        self.section = section
        self.clock = clock
        self.deliver = deliver
        self.publish_state = publish
        self.enabled = section.owners
        self.holder = f"{me.node_id}/{me.component}"
        serves = [p.node for p in section.printers]
        self.state = rules.initial(self.holder, section.share_group or "", serves)
        self.due: float | None = None  # the state's next deadline: the loop's tick is one comparison
        self.lock = threading.Lock()

    def attach(self, link: Link) -> None:
        """Subscribe before connecting (restored on every connect); nothing to follow unless sharing by owners."""
        if not self.enabled:
            return
        rt = self.runtime
        contract.COORDINATOR_FLEET.subscribe_raw(rt, contract.wildcard(contract.COORDINATOR), self._fleet)
        link.on_holder = lambda printer, holder: self.feed(rules.HolderSeen(printer, holder))
        link.on_active = lambda printer, active: self.feed(rules.ActivitySeen(printer, active))
        rt.on_connected(lambda: self.feed(rules.Connected()))
        rt.on_disconnected(lambda: self.feed(rules.Disconnected()))

    def publish(self) -> None:
        """Our share of the group: alone or sharing a subscription, every printer we serve is ours."""
        s = self.section
        serves = list(self.state.serves)
        owns = list(self.state.owns()) if self.enabled else serves
        payload = CoordinatorFleet(group=s.share_group, sharing=s.sharing, serves=serves, owns=owns)
        self.publish_state(contract.COORDINATOR_FLEET.topic(self.me), payload)

    # ------------------------------------------------------------ inputs
    def tick(self) -> None:
        """From the agent's loop: a grace or the settling after a connect may have ended."""
        due = self.due
        if due is not None and due <= self.clock():
            self.feed(rules.Tick())

    def feed(self, message: rules.FleetInput) -> None:
        with self.lock:
            self.state, effects = rules.step(self.state, message, self.clock())
            self.due = rules.next_deadline(self.state)
            for effect in effects:
                if isinstance(effect, rules.OwnerChanged):
                    self._owner(effect)
                elif isinstance(effect, rules.PublishFleet):
                    self.publish()
                else:
                    self._follow(effect.member, isinstance(effect, rules.Follow))

    def _owner(self, change: rules.OwnerChanged) -> None:
        mine = "this coordinator" if change.owner == self.holder else change.owner
        was = f" (was {change.previous})" if change.previous is not None else ""
        ours = self.holder in (change.owner, change.previous)  # others' changes: at debug, a flood stays quiet
        log.log(logging.INFO if ours else logging.DEBUG, "%s: owned by %s%s: %s", change.printer, mine, was, change.why)
        if change.previous is None or ours:  # the machine only needs whether it is ours
            self.deliver(change.printer, OwnerSeen(change.owner == self.holder))

    def _follow(self, member: str, follow: bool) -> None:
        """A member's status, subscribed while it is one (its retained status comes with the subscription)."""
        base = contract.component(self.topics, contract.COORDINATOR, member.split("/", 1)[0])
        if follow:
            contract.subscribe_presence(self.runtime, contract.STATUS, base, partial(self._status, member))
        else:
            self.runtime.unsubscribe(self.topics.absolute(contract.STATUS.filter(base)))

    def _member(self, message: Message) -> str | None:
        relative = self.topics.relative(message.topic)
        return None if relative is None else f"{relative.split('/', 1)[0]}/{contract.COORDINATOR}"

    def _status(self, member: str, presence: Availability, message: Message) -> None:
        self.feed(rules.PeerStatus(member, presence.state == "online"))

    def _fleet(self, message: Message) -> None:
        """A member's share; an empty (cleared) one, or another way of sharing, takes it out of the group."""
        member = self._member(message)
        if member is None:
            return
        if not message.payload:
            self.feed(rules.PeerFleet(member, None))
            return
        fleet = contract.COORDINATOR_FLEET.read(message.payload)  # Unreadable: counted by the runtime
        group = fleet.group if fleet.sharing == "owners" else None
        self.feed(rules.PeerFleet(member, group, tuple(fleet.serves)))
