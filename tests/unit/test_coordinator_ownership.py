"""Who owns which printer (``ownership.py``), without a broker: every member reaches the same answer,
a job stays with its holder, a dead member's printers move at once and a new one's wait for the job's end."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace

from printmesh_coordinator import ownership as o

A, B, C = "a/coordinator", "b/coordinator", "c/coordinator"
PRINTERS = ("p1", "p2", "p3", "p4", "p5", "p6")  # over A, B, C: p6 is C's, the rest A's or B's


class Member:
    """One coordinator's view: its pure fleet, a clock, and every effect it produced."""

    def __init__(self, me: str, serves: tuple[str, ...] = PRINTERS, group: str = "g", now: float = 100.0) -> None:
        self.fleet = o.initial(me, group, serves)
        self.now = now
        self.effects: list[o.Effect] = []

    def feed(self, *messages: o.FleetInput, dt: float = 0.0) -> list[o.Effect]:
        self.now += dt
        out: list[o.Effect] = []
        for message in messages:
            self.fleet, effects = o.step(self.fleet, message, self.now)
            out += effects
        self.effects += out
        return out

    def wait(self, seconds: float) -> list[o.Effect]:
        """Time passes; Ticks at every deadline that falls within it, as the shell's loop gives them."""
        end, out = self.now + seconds, []
        while (due := o.next_deadline(self.fleet)) is not None and due <= end:
            out += self.feed(o.Tick(), dt=max(0.0, due - self.now))
        self.now = end
        return out + self.feed(o.Tick())

    def owners(self) -> dict[str, str | None]:
        return {name: p.owner for name, p in self.fleet.printers.items()}


def peer(name: str, serves: tuple[str, ...] = PRINTERS, group: str | None = "g") -> list[o.FleetInput]:
    return [o.PeerFleet(name, group, serves), o.PeerStatus(name, True)]  # its status is followed once it is one


def idle(*printers: str) -> list[o.FleetInput]:
    return [o.ActivitySeen(p, False) for p in printers]


def started(me: str, others: tuple[str, ...], printers: tuple[str, ...] = PRINTERS) -> Member:
    m = Member(me, printers)
    m.feed(o.Connected())
    for other in others:
        m.feed(*peer(other, printers))
    m.feed(*idle(*printers))
    m.wait(o.REJOIN)  # past the settling, and past the window where a will may be a broker restart's
    return m


# ------------------------------------------------------------------ the hash
def test_weight_is_blake2b_and_the_same_in_every_process():
    digest = hashlib.blake2b(b"farm-1/coordinator\noctopi", digest_size=8).digest()
    assert o.weight("farm-1/coordinator", "octopi") == int.from_bytes(digest, "big") == 3261628957893454024


def test_rendezvous_moves_only_what_the_change_touches():
    printers = [f"printer-{i}" for i in range(300)]
    three = {p: o.rendezvous(p, [A, B, C]) for p in printers}
    shares = Counter(three.values())
    assert set(shares) == {A, B, C} and min(shares.values()) > 60, shares
    two = {p: o.rendezvous(p, [A, B]) for p in printers}
    assert all(two[p] == three[p] for p in printers if three[p] != C), "only C's printers move when C leaves"
    assert o.rendezvous("p1", []) is None
    assert o.rendezvous("p1", [C, A, B]) == o.rendezvous("p1", [A, B, C]), "the order of members does not matter"


# ------------------------------------------------------------------ agreement
def test_every_member_reaches_the_same_owners():
    views = [started(me, tuple(x for x in (A, B, C) if x != me)) for me in (A, B, C)]
    owners = views[0].owners()
    assert all(v.owners() == owners for v in views)
    assert owners == {p: o.rendezvous(p, [A, B, C]) for p in PRINTERS}
    for v in views:
        owns = tuple(p for p in PRINTERS if owners[p] == v.fleet.me)
        assert v.fleet.owns() == owns
        published = [e for e in v.effects if isinstance(e, o.PublishFleet)]
        assert published[-1] == o.PublishFleet(owns), "our share is published when it changes"


def test_nothing_is_decided_while_the_retained_messages_arrive():
    m = Member(A)
    assert m.feed(*peer(B), *idle(*PRINTERS)) == [o.Follow(B)], "not connected: nothing decided"
    m.feed(o.Connected())
    assert m.wait(o.SETTLE - 0.1) == [] and set(m.owners().values()) == {None}
    changes = [e for e in m.wait(0.2) if isinstance(e, o.OwnerChanged)]
    assert {e.printer for e in changes} == set(PRINTERS)
    assert o.next_deadline(m.fleet) is None, "nothing left to wait for: the loop does not spin"


def test_an_input_arriving_just_after_the_settling_does_not_swallow_its_end():
    """200 printers' retained states keep the network thread busy: the first input after the settling
    may come before the loop's Tick. Every printer is still decided (found in bench/coordinator_fleet.py:
    a coordinator that never armed any of its 200 printers)."""
    m = Member(A)
    m.feed(o.Connected())
    m.feed(*idle("p1"), dt=o.SETTLE + 0.01)  # after the settling's end, before any Tick
    m.wait(1.0)
    assert m.owners() == dict.fromkeys(PRINTERS, A)


def test_a_member_serves_only_its_printers_and_only_its_group_counts():
    m = Member(A, ("p1", "p2"))
    m.feed(o.Connected(), *idle("p1", "p2"))
    m.feed(o.PeerStatus(B, True), o.PeerFleet(B, "g", ("p2", "p9")))  # serves p2, not p1
    m.feed(o.PeerStatus(C, True), o.PeerFleet(C, "other", ("p1", "p2")))  # another group
    m.wait(o.SETTLE)
    assert m.owners() == {"p1": A, "p2": o.rendezvous("p2", [A, B])}
    assert o.candidates(m.fleet, "p1", m.now) == [A]
    m.feed(o.PeerFleet(B, None))  # B's fleet message cleared (or it shares by subscription)
    assert m.owners() == {"p1": A, "p2": A}


# ------------------------------------------------------------------ jobs
def test_a_new_member_takes_its_printers_only_at_the_job_boundary():
    m = started(A, (B,))
    before = m.owners()
    for p in PRINTERS:  # every printer prints, armed by its owner
        m.feed(o.ActivitySeen(p, True), o.HolderSeen(p, before[p]))
    m.feed(*peer(C))
    m.wait(5.0)
    assert m.owners() == before, "mid-job, every printer stays with its holder"
    wins = [p for p in PRINTERS if o.rendezvous(p, [A, B, C]) == C]
    assert wins, "the test needs C to win a printer"
    m.feed(o.ActivitySeen(wins[0], False))  # that print ended
    assert m.owners()[wins[0]] == C
    assert all(m.owners()[p] == before[p] for p in PRINTERS if p != wins[0])


def test_a_member_joining_mid_print_defers_to_the_holders():
    """C starts while A and B print: it hears the bridges' holders and takes nothing."""
    c = Member(C)
    c.feed(o.Connected(), *peer(A), *peer(B))
    for p in PRINTERS:
        c.feed(o.ActivitySeen(p, True), o.HolderSeen(p, o.rendezvous(p, [A, B])))
    c.wait(o.SETTLE + 5)
    assert c.fleet.owns() == ()
    assert c.owners() == {p: o.rendezvous(p, [A, B]) for p in PRINTERS}


def test_activity_not_heard_yet_counts_as_a_job():
    m = Member(C)
    m.feed(o.Connected(), *peer(A), o.HolderSeen("p1", A))
    m.wait(o.SETTLE)
    assert m.owners()["p1"] == A, "an unknown state never takes a printer from a live holder"


def test_a_holder_never_heard_of_keeps_its_job():
    m = started(A, (B,))
    m.feed(o.ActivitySeen("p1", True), o.HolderSeen("p1", "old/coordinator"))
    assert m.owners()["p1"] == "old/coordinator", "not known dead: it keeps the job"
    m.feed(o.ActivitySeen("p1", False))
    assert m.owners()["p1"] == o.rendezvous("p1", [A, B])


# ------------------------------------------------------------------ deaths
def test_a_dead_members_printers_move_at_once_even_mid_job():
    m = started(A, (B, C))
    theirs = [p for p in PRINTERS if m.owners()[p] == B]
    assert theirs, "the test needs B to own a printer"
    for p in PRINTERS:
        m.feed(o.ActivitySeen(p, True), o.HolderSeen(p, m.owners()[p]))
    m.feed(o.PeerStatus(B, False))  # its last will
    assert m.wait(o.DEATH_GRACE - 0.1) == [], "within the grace: maybe the broker going away"
    changes = [e for e in m.wait(0.2) if isinstance(e, o.OwnerChanged)]
    assert {e.printer for e in changes} == set(theirs)
    for e in changes:
        assert e.previous == B and e.owner == o.rendezvous(e.printer, [A, C]) and "died" in e.why
    # the new owner arms: the bridge names it, and it keeps the rest of the job
    for e in changes:
        m.feed(o.HolderSeen(e.printer, e.owner))
    m.feed(*peer(B))  # B comes back
    assert all(m.owners()[e.printer] == e.owner for e in changes), "a job does not go back mid-print"


def test_the_broker_going_away_is_not_a_death():
    m = started(A, (B,))
    before = m.owners()
    for p in PRINTERS:
        m.feed(o.ActivitySeen(p, True), o.HolderSeen(p, before[p]))
    m.feed(o.PeerStatus(B, False), dt=0.0)  # mosquitto publishes every will as it shuts down...
    m.feed(o.Disconnected(), dt=0.05)  # ...and then we lose it too
    assert m.wait(30) == [] and m.owners() == before
    m.feed(o.Connected())
    m.feed(o.PeerStatus(B, False))  # B's will, retained, before B is back
    m.wait(3.0)
    assert m.owners() == before, "within REJOIN of our reconnect"
    m.feed(o.PeerStatus(B, True))
    m.wait(30)
    assert m.owners() == before


def test_a_will_heard_at_reconnect_counts_after_rejoin():
    m = started(A, (B,))
    m.feed(o.ActivitySeen("p1", True), o.HolderSeen("p1", B))
    m.feed(o.Disconnected(), dt=1)
    m.feed(o.Connected(), dt=1)
    m.feed(o.PeerStatus(B, False))
    m.wait(o.REJOIN - 0.1)
    assert m.owners()["p1"] == B
    m.wait(0.2)
    assert m.owners()["p1"] == A


def test_only_members_of_our_group_are_followed_and_the_table_is_bounded():
    m = Member(A)
    m.feed(o.Connected())
    assert m.feed(o.PeerFleet(B, "g", PRINTERS)) == [o.Follow(B)], "a member: its status is followed"
    assert m.feed(o.PeerFleet(C, "other", PRINTERS)) == [], "another group's: not"
    m.feed(o.PeerStatus(A, False), o.PeerFleet(A, "g", PRINTERS))  # ourselves (a previous run's will)
    assert set(m.fleet.members) == {B}
    m.feed(o.PeerStatus(B, True), *idle(*PRINTERS))
    m.wait(o.REJOIN)
    before, effects = m.owners(), []
    for i in range(20 * o.MEMBERS_MAX):  # a flood of made-up statuses (never subscribed: never delivered)
        effects += m.feed(o.PeerStatus(f"junk{i}/coordinator", i % 2 == 0))
    assert effects == [] and set(m.fleet.members) == {B} and m.owners() == before
    for i in range(2 * o.MEMBERS_MAX):  # made-up members of our group, offline: bounded, each followed and dropped
        effects += m.feed(o.PeerFleet(f"fake{i}/coordinator", "g", ("p9",)))
    follows = sum(isinstance(e, o.Follow) for e in effects) - sum(isinstance(e, o.Unfollow) for e in effects)
    assert len(m.fleet.members) == o.MEMBERS_MAX == follows + 1  # B's Follow came before
    assert B in m.fleet.members, "a live member is not pushed out"
    out = m.feed(o.PeerFleet(B, None))  # B's fleet message cleared: no longer a member
    assert out[0] == o.Unfollow(B) and B not in m.fleet.members
    assert m.fleet.owns() == PRINTERS and o.PublishFleet(PRINTERS) in out


def test_a_repeated_offline_does_not_restart_its_grace():
    m = started(A, (B,))
    m.feed(o.ActivitySeen("p1", True), o.HolderSeen("p1", B))
    m.feed(o.PeerStatus(B, False))
    first = m.fleet.members[B]
    m.feed(o.PeerStatus(B, False), dt=0.5)
    assert m.fleet.members[B] == first
    m.wait(0.6)
    assert m.owners()["p1"] == A
    assert replace(m.fleet.members[B], online=True).online
