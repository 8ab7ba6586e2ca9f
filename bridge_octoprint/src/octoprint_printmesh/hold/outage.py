"""The armed plan through a broker outage: the broker going away told apart from the holder dying.

mosquitto publishes every client's last will as it shuts down, so for a moment a broker
restart looks exactly like the holder dying: its status goes ``offline``. The two are told
apart by what happens next, never by guessing:

* Our own connection drops too (within ``HOLDER_GRACE``): the broker went away. The plan
  stays armed. Once we are connected again the holder is checked anew: its retained status
  comes with our restored subscription, and it republishes ``online`` in its own connect
  callback. Only if it is not seen online within ``RECONFIRM`` is the plan disarmed.
* Our connection stays up for ``HOLDER_GRACE``: the holder really died, the plan is disarmed.

A running hold is released at once in both cases (nobody could move or release it): the
safety rules never wait. While the holder cannot be reached a planned layer is not held
(nobody would capture it, and the print would only wait for the watchdog): it is kept as
missed, with its reason, and published as a ``missed`` event once the holder is seen
online again (or when the plan is disarmed), so the holder's coordinator records it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from octoprint_printmesh.hold.types import (
    Action,
    BrokerBack,
    BrokerLost,
    HoldConfig,
    HolderOffline,
    HolderOnline,
    HoldState,
    LayerReached,
    Missed,
    PublishEvent,
    Reach,
)
from octoprint_printmesh.hold.views import missed_payload
from printmesh_core.contract import MISSED

Step = tuple[HoldState, list[Action]]
Release = Callable[[HoldState, float, HoldConfig, str], Step]
OutageInput = BrokerLost | BrokerBack | HolderOnline | HolderOffline
INPUTS = (BrokerLost, BrokerBack, HolderOnline, HolderOffline)

HOLDER_GRACE = 3.0  # s: the holder's status said offline and our connection stayed up: it died
RECONFIRM = 10.0  # s after our reconnect for the holder to say online (components are back within 5 s)
MISSED_KEPT = 200  # layers remembered while the holder is away; the oldest go first
BROKER_UNREACHABLE, HOLDER_UNREACHABLE = "broker_unreachable", "holder_unreachable"


def reachable(state: HoldState) -> bool:
    """A hold may start: we have the broker, and the holder (if any) is known to be there."""
    return state.reach.connected and (state.holder is None or state.reach.seen)


def seen(reach: Reach) -> Reach:
    """The holder spoke (its status said online, or it sent a hold request)."""
    return replace(reach, seen=True, deadline=None)


def miss(state: HoldState, layer: LayerReached, now: float) -> HoldState:
    """A planned layer passes unheld: remember it, and why, for the holder."""
    reason = BROKER_UNREACHABLE if not state.reach.connected else HOLDER_UNREACHABLE
    missed = Missed(layer.layer, layer.z, reason, now, state.job_path, state.job_started)
    kept = (*state.reach.missed, missed)[-MISSED_KEPT:]
    return replace(state, reach=replace(state.reach, missed=kept))


def _tell(state: HoldState) -> Step:
    """Publish the missed layers (the holder can hear them now) and forget them."""
    actions: list[Action] = [PublishEvent(MISSED, missed_payload(m, state.holder)) for m in state.reach.missed]
    return replace(state, reach=replace(state.reach, missed=())), actions


def step(state: HoldState, event: OutageInput, now: float, config: HoldConfig, release: Release) -> Step:
    reach = state.reach
    if isinstance(event, BrokerLost):  # a running hold ends now; the plan stays armed
        state = replace(state, reach=replace(reach, connected=False, seen=state.holder is None, deadline=None))
        return release(state, now, config, "broker_lost")
    if isinstance(event, BrokerBack):
        if reach.connected:
            return state, []
        if state.holder is None:
            return _tell(replace(state, reach=replace(reach, connected=True, seen=True, deadline=None)))
        return replace(state, reach=replace(reach, connected=True, seen=False, deadline=now + RECONFIRM)), []
    if state.holder is None or event.holder != state.holder:
        return state, []
    if isinstance(event, HolderOnline):
        return _tell(replace(state, reach=seen(reach))) if reach.connected else (state, [])
    if reach.connected and reach.deadline is None:  # offline while we stay connected: wait to tell which
        state = replace(state, reach=replace(reach, seen=False, deadline=now + HOLDER_GRACE))
    return release(state, now, config, "holder_offline")


def expire(state: HoldState, now: float, config: HoldConfig, release: Release) -> Step | None:
    """The holder was not seen online in time, with our connection up: disarm the plan."""
    reach = state.reach
    if reach.deadline is None or now < reach.deadline or not reach.connected:
        return None
    holder = state.holder
    state, told = _tell(state)
    state = replace(state, armed=None, holder=None, reach=seen(state.reach))
    released, actions = release(state, now, config, "holder_offline")
    return released, [PublishEvent("hold_disarmed", {"reason": "holder_offline", "holder": holder}), *told, *actions]
