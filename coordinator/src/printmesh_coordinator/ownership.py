"""Which coordinator of a group owns which printer: the same answer on every member, no protocol of its own.

Each coordinator publishes, retained, its group and the printers it serves (``fleet``); its
retained status, with its last will, says whether it is alive. From those every member
computes the same owner for each printer by rendezvous (highest-random-weight) hashing: of
the live members of the group that serve the printer, the one with the highest
``blake2b(member, printer)``. A member joining or leaving moves only the printers it wins or
held, and the weights are the same in every process (never Python's salted ``hash()``).

The owner is the member that arms the bridge with its plan. The bridge names the plan's one
holder, and only that holder handles a hold (``machine.py``), so when two members briefly
disagree (one has not heard a status yet), the bridge still decides, and no hold is taken twice.

When the owner changes:

* Mid-job, not while the coordinator the bridge names as holder lives: the printer stays
  with it for the whole job (one coordinator, one folder per job). A member that joins takes
  its printers at the next job boundary, when no print is running.
* A dead member's printers move at once. Dead means its status said ``offline`` and our own
  connection stayed up for ``DEATH_GRACE`` s: mosquitto publishes every will as it shuts down,
  and an ``offline`` followed by our own disconnect is the broker going away, not a death.
  An ``offline`` heard while (re)connecting (a retained will) stands for ``REJOIN`` s first:
  after a broker restart every component is back within 5 s, and says ``online`` again.
* After our own (re)connect nothing is decided for ``SETTLE`` s, while the retained statuses
  and fleet messages arrive: a member not heard yet is not taken for absent.

Only members are followed: a fleet message naming our group makes its author one, and its
status is then subscribed (``Follow``). No other coordinator's status is ever subscribed, so a
flood of made-up statuses never reaches us (as the link follows only its printers' holders).

``step(fleet, message, now) -> (fleet, effects)`` is pure; ``fleet.py`` is its shell.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from printmesh_coordinator.ownership_messages import (
    ActivitySeen,
    Connected,
    Disconnected,
    Effect,
    FleetInput,
    Follow,
    HolderSeen,
    OwnerChanged,
    PeerFleet,
    PeerStatus,
    PublishFleet,
    Tick,
    Unfollow,
)

__all__ = [
    "ActivitySeen", "Connected", "Disconnected", "Effect", "FleetInput", "Follow", "HolderSeen", "OwnerChanged",
    "PeerFleet", "PeerStatus", "PublishFleet", "Tick", "Unfollow", "initial", "next_deadline", "rendezvous", "step",
    "weight",
]  # fmt: skip

DEATH_GRACE = 1.0  # s an 'offline' must stand, with our connection up, before the member counts as dead
SETTLE = 1.5  # s after our (re)connect before anything is decided: the retained messages arrive meanwhile
REJOIN = 5.0  # s after our (re)connect for a member whose will we hear to say 'online' again
MEMBERS_MAX = 256  # members of our group followed; past it, the oldest offline one is forgotten


def weight(member: str, printer: str) -> int:
    """The rendezvous weight: 64 bits of blake2b, identical in every process and on every machine."""
    digest = hashlib.blake2b(f"{member}\n{printer}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(printer: str, members: Iterable[str]) -> str | None:
    """The member with the highest weight for this printer (ties, which blake2b makes absurd, by name)."""
    return max(members, key=lambda m: (weight(m, printer), m), default=None)


# ------------------------------------------------------------------ state
@dataclass(frozen=True)
class Member:
    """Another coordinator, as its retained status and fleet message describe it."""

    online: bool | None = None  # its status; None: not heard
    dead_at: float | None = None  # offline: when it counts as dead (None: while we are disconnected)
    group: str | None = None  # None: no fleet message heard (or it was cleared)
    serves: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Printer:
    holder: str | None = None  # the plan's holder, from the bridge's retained hold status
    active: bool | None = None  # a job is running (printing, paused, held...); None: not heard
    owner: str | None = None  # decided; None: not decided yet


@dataclass(frozen=True)
class Fleet:
    me: str  # '<node>/coordinator'
    group: str
    serves: tuple[str, ...]
    members: MappingProxyType[str, Member] = field(default_factory=lambda: MappingProxyType({}))
    printers: MappingProxyType[str, Printer] = field(default_factory=lambda: MappingProxyType({}))
    holders: frozenset[str] = frozenset()  # the coordinators our printers' bridges name
    connected_since: float | None = None  # None: not connected, nothing is decided
    at: float = 0.0  # the time of the last step: deadlines up to it are taken into account

    def owns(self) -> tuple[str, ...]:
        return tuple(name for name in self.serves if self.printers[name].owner == self.me)


def initial(me: str, group: str, serves: Iterable[str]) -> Fleet:
    names = tuple(serves)
    return Fleet(me, group, names, printers=MappingProxyType({n: Printer() for n in names}))


Step = tuple[Fleet, list[Effect]]


# ------------------------------------------------------------------ rules
def ready(fleet: Fleet, now: float) -> bool:
    return fleet.connected_since is not None and now >= fleet.connected_since + SETTLE


def _live(fleet: Fleet, name: str, now: float) -> bool:
    if name == fleet.me:
        return True
    m = fleet.members.get(name)
    if m is None or m.online is None:
        return False
    return m.online or m.dead_at is None or now < m.dead_at


def dead(fleet: Fleet, name: str, now: float) -> bool:
    """Heard 'offline' and past its grace; a member never heard of is not dead, only unknown."""
    m = fleet.members.get(name) if name != fleet.me else None
    return m is not None and m.online is False and m.dead_at is not None and now >= m.dead_at


def candidates(fleet: Fleet, printer: str, now: float) -> list[str]:
    """The live members of our group serving this printer, ourselves included."""
    names = [fleet.me] if printer in fleet.serves else []
    for name, m in fleet.members.items():
        if name != fleet.me and m.group == fleet.group and printer in m.serves and _live(fleet, name, now):
            names.append(name)
    return names


def owner_of(fleet: Fleet, printer: str, now: float) -> tuple[str | None, str]:
    """The owner, and why: the holder for the rest of a job, else the rendezvous winner."""
    p = fleet.printers[printer]
    job = p.active is not False  # not heard yet counts as running: never taken by mistake
    if job and p.holder is not None and not dead(fleet, p.holder, now):
        return p.holder, "it holds the running job"
    winner = rendezvous(printer, candidates(fleet, printer, now))
    if job and p.holder is not None:
        return winner, f"its holder {p.holder} died"
    return winner, "rendezvous hashing, no job running" if not job else "rendezvous hashing, the job has no holder"


def _decide(fleet: Fleet, names: Iterable[str], now: float) -> Step:
    if not ready(fleet, now):
        return fleet, []
    printers = fleet.printers.copy()
    effects: list[Effect] = []
    for name in names:
        p = printers[name]
        owner, why = owner_of(fleet, name, now)
        if owner != p.owner:
            printers[name] = replace(p, owner=owner)
            effects.append(OwnerChanged(name, owner, p.owner, why))
    if not effects:
        return fleet, []
    owned, fleet = fleet.owns(), replace(fleet, printers=MappingProxyType(printers))
    return fleet, [*effects, PublishFleet(fleet.owns())] if fleet.owns() != owned else effects


def _member(fleet: Fleet, name: str, member: Member | None) -> Fleet:
    """Add, replace or (None) drop a member of our group; a full table drops its oldest offline one."""
    members = fleet.members.copy()
    if member is None:
        members.pop(name, None)
    else:
        if name not in members and len(members) >= MEMBERS_MAX:
            stale = next((n for n, m in members.items() if not m.online), None)
            if stale is None:
                return fleet  # a full table of live members: the newcomer waits
            members.pop(stale)
        members[name] = member
    return replace(fleet, members=MappingProxyType(members))


def _printer(fleet: Fleet, name: str, printer: Printer) -> Fleet:
    printers = fleet.printers.copy()
    printers[name] = printer
    holders = frozenset(p.holder for p in printers.values() if p.holder is not None)
    return replace(fleet, printers=MappingProxyType(printers), holders=holders)


def step(fleet: Fleet, message: FleetInput, now: float) -> Step:
    """One input in: the new fleet and what to do (tell a printer's machine its owner, publish ours)."""
    before, followed = fleet.at, fleet.members.keys()
    fleet, names = _apply(replace(fleet, at=now), message, now)
    # Every deadline in (before, now] counts, whatever input came first: a status or a printer's
    # state arriving just after the settling ended must not swallow the end of the settling.
    expired = _expired(fleet, before, now)
    names = expired if isinstance(message, Tick) else tuple(dict.fromkeys((*names, *expired)))
    fleet, effects = _decide(fleet, names, now)
    follow: list[Effect] = [Follow(n) for n in fleet.members.keys() - followed]
    return fleet, [*follow, *(Unfollow(n) for n in followed - fleet.members.keys()), *effects]


def _apply(fleet: Fleet, message: FleetInput, now: float) -> tuple[Fleet, tuple[str, ...]]:
    """The input taken in, and the printers whose owner it may change."""
    if isinstance(message, Connected):
        # An 'offline' heard while we were away (or a retained will) gets REJOIN s to be taken back.
        members = {n: replace(m, dead_at=now + REJOIN) if m.online is False and m.dead_at is None else m
                   for n, m in fleet.members.items()}  # fmt: skip
        return replace(fleet, connected_since=now, members=MappingProxyType(members)), fleet.serves
    if isinstance(message, Disconnected):
        # The 'offline' heard just before is likely the broker going away: no grace runs out meanwhile.
        members = {n: replace(m, dead_at=None) if m.dead_at is not None and m.dead_at > now else m
                   for n, m in fleet.members.items()}  # fmt: skip
        return replace(fleet, connected_since=None, members=MappingProxyType(members)), ()
    if isinstance(message, PeerStatus | PeerFleet):
        known = fleet.members.get(message.member)
        if message.member == fleet.me or (known is None and isinstance(message, PeerStatus)):
            return fleet, ()  # ourselves (a previous run's will included), or not a member of our group
        old = known or Member()
        if isinstance(message, PeerFleet):
            if message.group != fleet.group:  # another group, or its fleet message cleared: not a member
                return _member(fleet, message.member, None), _touched(fleet, message.member, (old,))
            new = replace(old, group=message.group, serves=frozenset(message.serves))
        elif message.online:
            new = replace(old, online=True, dead_at=None)
        elif old.online is False:
            new = old  # a repeated 'offline': its clock runs on
        else:
            new = replace(old, online=False, dead_at=_grace(fleet, now))
        return _member(fleet, message.member, new), _touched(fleet, message.member, (old, new))
    if isinstance(message, HolderSeen | ActivitySeen):
        p = fleet.printers.get(message.printer)
        if p is None:
            return fleet, ()
        if isinstance(message, HolderSeen):
            changed = replace(p, holder=message.holder)
        else:
            changed = replace(p, active=message.active)
        if changed == p:
            return fleet, () if p.owner is not None else (message.printer,)
        return _printer(fleet, message.printer, changed), (message.printer,)
    return fleet, fleet.serves  # a Tick: see _expired


def _expired(fleet: Fleet, since: float, now: float) -> tuple[str, ...]:
    """The printers whose owner a deadline in ``(since, now]`` may change: every one at the settling's end."""
    if fleet.connected_since is not None and since < fleet.connected_since + SETTLE <= now:
        return fleet.serves
    names: set[str] = set()
    for name, m in fleet.members.items():
        if m.dead_at is not None and since < m.dead_at <= now:
            names.update(_touched(fleet, name, (m,)))
    return tuple(p for p in fleet.serves if p in names)


def _touched(fleet: Fleet, name: str, members: tuple[Member, ...]) -> tuple[str, ...]:
    """The printers a member's news may move: those it serves in our group, and those it holds.

    Anyone else's (a coordinator of another group, or a flood of made-up ones) costs no decision."""
    serves = frozenset().union(*(m.serves for m in members if m.group == fleet.group))
    if not serves and name not in fleet.holders:
        return ()
    return tuple(p for p in fleet.serves if p in serves or fleet.printers[p].holder == name)


def _grace(fleet: Fleet, now: float) -> float | None:
    """When a member whose 'offline' we hear now counts as dead: None while we are disconnected."""
    if fleet.connected_since is None:
        return None
    return max(now + DEATH_GRACE, fleet.connected_since + REJOIN)


def next_deadline(fleet: Fleet) -> float | None:
    """When a ``Tick`` may change an owner (after ``fleet.at``): the settling's end, or a grace's."""
    if fleet.connected_since is None:
        return None
    times = [m.dead_at for m in fleet.members.values() if m.dead_at is not None]
    times.append(fleet.connected_since + SETTLE)
    return min((t for t in times if t > fleet.at), default=None)
