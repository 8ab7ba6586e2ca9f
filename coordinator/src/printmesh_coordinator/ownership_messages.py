"""What goes into ``ownership.step`` and what comes out: plain values, as ``messages.py`` is for the machine."""

from __future__ import annotations

from dataclasses import dataclass


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Connected:
    """Our own connection is up (every connect, the first included)."""


@dataclass(frozen=True)
class Disconnected:
    """Our own connection was lost: whatever we hear was not said, until we are back."""


@dataclass(frozen=True)
class PeerStatus:
    member: str
    online: bool


@dataclass(frozen=True)
class PeerFleet:
    """A member's fleet message; ``group`` None: cleared, or a member that does not share by ownership."""

    member: str
    group: str | None
    serves: tuple[str, ...] = ()


@dataclass(frozen=True)
class HolderSeen:
    printer: str
    holder: str | None


@dataclass(frozen=True)
class ActivitySeen:
    printer: str
    active: bool


@dataclass(frozen=True)
class Tick:
    """Time passed: a grace or the settling after a connect may have ended."""


FleetInput = Connected | Disconnected | PeerStatus | PeerFleet | HolderSeen | ActivitySeen | Tick


# ------------------------------------------------------------------ effects
@dataclass(frozen=True)
class OwnerChanged:
    printer: str
    owner: str | None
    previous: str | None
    why: str


@dataclass(frozen=True)
class PublishFleet:
    owns: tuple[str, ...]


@dataclass(frozen=True)
class Follow:
    """A new member of our group: follow its status (its last will says when it dies)."""

    member: str


@dataclass(frozen=True)
class Unfollow:
    member: str


Effect = OwnerChanged | PublishFleet | Follow | Unfollow
