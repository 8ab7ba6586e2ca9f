"""The armed plan through a broker outage (``hold/outage.py``), without a broker.

mosquitto publishes every client's last will as it shuts down, so the bridge sees its
holder go offline right before its own connection drops. That must keep the plan; a
holder that dies while the broker stays up must still release and disarm. A planned
layer that passes while the holder cannot be reached is never held, and is told to the
holder, with its reason, once it is back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from octoprint_printmesh.gcode import token_in
from octoprint_printmesh.hold.machine import step
from octoprint_printmesh.hold.outage import HOLDER_GRACE, RECONFIRM
from octoprint_printmesh.hold.types import (
    Action,
    Armed,
    BrokerBack,
    BrokerLost,
    HoldCommand,
    HoldConfig,
    HolderOffline,
    HolderOnline,
    HoldInput,
    HoldState,
    LayerReached,
    OriginReported,
    PrintStarted,
    PublishEvent,
    SendGcode,
    SetJobOnHold,
    Tick,
    TokenSeen,
)
from printmesh_core.models.printer import LayerMissed

CONFIG = HoldConfig(session="t")
HOLDER = "coord/coordinator"


@dataclass
class Bridge:
    state: HoldState = field(default_factory=HoldState)
    now: float = 1000.0
    actions: list[Action] = field(default_factory=list)

    def feed(self, event: HoldInput, dt: float = 0.0) -> list[Action]:
        self.now += dt
        self.state, out = step(self.state, event, self.now, CONFIG)
        self.actions += out
        return out

    def armed(self, every: int = 5, holder: str | None = HOLDER) -> Bridge:
        self.feed(PrintStarted("box.gcode", 900.0))
        self.feed(HoldCommand("arm", plan=Armed(every=every), holder=holder))
        return self

    def layer(self, n: int, dt: float = 1.0) -> list[Action]:
        return self.feed(LayerReached(n, 30, n * 0.2), dt)

    def hold_through(self, n: int) -> None:
        """Layer ``n`` is held: drained and confirmed."""
        assert SetJobOnHold(True) in self.layer(n), f"layer {n} held"
        self.feed(OriginReported(50, 50, n * 0.2))
        token = [t for a in self.actions if isinstance(a, SendGcode) for line in a.lines if (t := token_in(line))][-1]
        self.feed(TokenSeen(token))
        assert self.state.phase == "held"

    def events(self, name: str) -> list[dict]:
        return [a.payload for a in self.actions if isinstance(a, PublishEvent) and a.event == name]


def test_a_broker_restart_keeps_the_plan_and_the_next_planned_layer_is_held():
    b = Bridge().armed()
    b.feed(HolderOffline(HOLDER))  # the will mosquitto publishes as it shuts down ...
    b.feed(BrokerLost(), 0.01)  # ... right before our own connection drops
    b.feed(Tick(), 40.0)  # however long it is away, nothing expires while we are disconnected
    b.feed(BrokerBack())
    b.feed(HolderOffline(HOLDER), 0.01)  # the persisted will, retained, comes with the subscription
    b.feed(Tick(), RECONFIRM - 1)
    assert b.state.armed is not None and not b.events("hold_disarmed")
    b.feed(HolderOnline(HOLDER))  # the coordinator reconnected and said online
    b.feed(Tick(), 60.0)
    assert b.state.armed == Armed(every=5) and not b.events("hold_disarmed")
    b.hold_through(5)
    assert not b.events("missed"), "no layer was planned during the outage"


def test_a_layer_planned_during_the_outage_is_not_held_and_is_told_to_the_holder_once_back():
    b = Bridge().armed()
    b.layer(4)
    b.feed(BrokerLost())
    assert b.layer(5) == [] and b.state.phase == "idle", "never held with nobody to release it"
    b.layer(6)
    b.feed(BrokerBack())
    assert not b.events("missed"), "not yet: the holder would not hear it"
    assert b.layer(10) == [], "the holder is not confirmed yet: not held either"
    out = b.feed(HolderOnline(HOLDER))
    missed = [LayerMissed.model_validate(p) for p in b.events("missed")]
    assert [(m.layer, m.reason) for m in missed] == [(5, "broker_unreachable"), (10, "holder_unreachable")]
    assert all(m.holder == HOLDER and m.path == "box.gcode" and m.started_at == 900.0 for m in missed)
    assert missed[0].z == 1.0 and len(out) == 2
    b.feed(HolderOnline(HOLDER))
    assert len(b.events("missed")) == 2, "told once"
    b.hold_through(15)


def test_a_hold_running_when_the_broker_goes_is_released_at_once_and_the_plan_stays():
    b = Bridge().armed()
    b.hold_through(5)
    out = b.feed(BrokerLost())
    assert SetJobOnHold(False) in out and b.events("released")[-1]["reason"] == "broker_lost"
    assert b.state.armed == Armed(every=5)


def test_the_holder_dying_while_the_broker_stays_up_releases_now_and_disarms_after_the_grace():
    b = Bridge().armed()
    b.hold_through(5)
    out = b.feed(HolderOffline(HOLDER))
    assert SetJobOnHold(False) in out and b.events("released")[-1]["reason"] == "holder_offline"
    assert b.layer(10, dt=HOLDER_GRACE / 2) == [], "not held while the holder is in doubt"
    b.feed(Tick(), HOLDER_GRACE / 2)
    assert b.state.armed is None and b.state.holder is None
    assert b.events("hold_disarmed") == [{"reason": "holder_offline", "holder": HOLDER}]
    assert [m["layer"] for m in b.events("missed")] == [10], "published anyway, for whoever listens"
    assert b.layer(15) == []


def test_a_holder_that_never_comes_back_after_the_outage_disarms_after_the_reconfirm_window():
    b = Bridge().armed()
    b.feed(BrokerLost())
    b.layer(5)
    b.feed(BrokerBack(), 20.0)
    b.feed(HolderOffline(HOLDER), 0.01)
    b.feed(Tick(), RECONFIRM - 0.1)
    assert b.state.armed is not None, "the offline will does not shorten the wait"
    b.feed(Tick(), 0.2)
    assert b.state.armed is None and b.events("hold_disarmed")[0]["reason"] == "holder_offline"
    assert [(m["layer"], m["reason"]) for m in b.events("missed")] == [(5, "broker_unreachable")]


def test_a_plan_without_holder_tells_its_missed_layers_as_soon_as_the_broker_is_back():
    b = Bridge().armed(holder=None)
    b.feed(BrokerLost())
    b.layer(5)
    assert b.events("missed") == []
    b.feed(BrokerBack())
    assert [m["layer"] for m in b.events("missed")] == [5] and b.events("missed")[0]["holder"] is None
    b.hold_through(10)


def test_a_connect_while_connected_changes_nothing():
    b = Bridge().armed()
    before = b.state
    assert b.feed(BrokerBack()) == [] and b.state == before
