"""One printer's machine with ``sharing: owners``: only the owner arms, only the holder the bridge names holds."""

from __future__ import annotations

from coordinator_support import HOLDER, PROFILE, Sim, held, hold_status, printer_config

from printmesh_coordinator.config import CoordinatorSection
from printmesh_coordinator.messages import (
    BridgePresence,
    CoordinatorPresence,
    OwnerSeen,
    ProfileSeen,
    SendHold,
    SendMove,
)
from printmesh_coordinator.report import view
from printmesh_coordinator.state import Setup, initial

OTHER = "other/coordinator"


def owners_sim() -> Sim:
    sim = Sim()
    sim.state = initial(Setup(printer_config(), "coord", "s1", owners=True))
    sim.feed(BridgePresence(True))
    sim.feed(ProfileSeen(PROFILE))
    return sim


def test_no_arming_before_the_owner_is_known_nor_for_another_owner():
    sim = owners_sim()
    assert not sim.of(SendHold)
    assert view(sim.state, sim.now).message == "waiting for its owner to be known"
    sim.feed(OwnerSeen(False))
    assert not sim.of(SendHold)
    state = view(sim.state, sim.now)
    assert (state.phase, state.message, state.armed) == ("waiting", "owned by another coordinator", False)
    sim.feed(hold_status(holder=OTHER))
    sim.feed(CoordinatorPresence(OTHER, True))
    state = view(sim.state, sim.now)
    assert (state.phase, state.armed) == ("armed", True), "the fleet's plan is armed, by its owner"
    assert not sim.of(SendHold)


def test_the_owner_arms_over_another_coordinators_plan():
    sim = owners_sim()
    sim.feed(hold_status(holder=OTHER))
    sim.feed(CoordinatorPresence(OTHER, True))
    sim.feed(OwnerSeen(True))
    arm = sim.last(SendHold)
    assert arm.holder == HOLDER, "ours now (a job boundary, or its holder died): armed by us"
    sim.ok(arm, {"armed": {"every": 5}})
    sim.feed(hold_status(holder=HOLDER))
    assert view(sim.state, sim.now).phase == "armed" and len(sim.of(SendHold)) == 1


def test_without_owners_another_online_coordinators_plan_is_accepted():
    sim = Sim()
    sim.feed(BridgePresence(True))
    sim.feed(ProfileSeen(PROFILE))
    sim.out.clear()
    sim.feed(hold_status(holder=OTHER))
    sim.feed(CoordinatorPresence(OTHER, True))
    sim.feed(OwnerSeen(False))  # ignored without sharing: owners
    assert not sim.of(SendHold) and view(sim.state, sim.now).phase == "armed"


def test_only_the_holder_the_bridge_names_handles_the_hold():
    sim = owners_sim()
    sim.feed(OwnerSeen(False))
    assert sim.feed(held(hold_id=1)) == [], "no hold status seen: nobody we know held it"
    sim.feed(hold_status(phase="draining", holder=OTHER))
    assert sim.feed(held(hold_id=2)) == [], "the bridge held for another coordinator"
    assert sim.state.run is None
    sim.feed(hold_status(phase="draining", holder=HOLDER))  # e.g. its holder died and we armed
    assert any(isinstance(c, SendMove) for c in sim.feed(held(hold_id=3))), "ours: the hold status names us"
    assert sim.state.run is not None and sim.state.run.hold_id == 3


def test_sharing_config_names_its_key():
    assert CoordinatorSection().owners and not CoordinatorSection().shared_subscription
    assert not CoordinatorSection(share_group=None).owners, "no group: alone"
    assert CoordinatorSection(sharing="subscription").shared_subscription
    for bad, key in (({"sharing": "round_robin"}, "sharing"), ({"sharing": "subscription", "share_group": None},
                                                                "share_group")):  # fmt: skip
        try:
            CoordinatorSection.model_validate(bad)
        except ValueError as exc:
            assert key in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")
