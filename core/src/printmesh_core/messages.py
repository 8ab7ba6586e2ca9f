"""The runtime's paho-free vocabulary: what a handler receives and what a process announces.

Kept apart from ``mqtt.py`` so code that only handles messages never needs paho's types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from printmesh_core.models.base import Payload
from printmesh_core.models.status import Status

PayloadLike = Payload | bytes | str


@dataclass(frozen=True)
class Message:
    """An incoming message, free of paho types."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    response_topic: str | None = None
    correlation_data: bytes | None = None


Handler = Callable[[Message], None]


@dataclass(frozen=True)
class Presence:
    """Which retained status topic this process owns, and how to describe itself."""

    topic: str  # relative to the root
    component: str
    version: str

    def status(
        self,
        state: Literal["online", "offline"],
        reason: str | None,
        dropped: int,
        rejected: int = 0,
        failed: int = 0,
        evicted: int = 0,
    ) -> Status:
        """The retained status payload: online on connect, offline as the will or on shutdown."""
        return Status(state=state, component=self.component, version=self.version, reason=reason, dropped=dropped,
                      rejected=rejected, failed=failed, evicted=evicted)  # fmt: skip


def encode(payload: PayloadLike) -> bytes:
    """The bytes on the wire: a model as its JSON, text as UTF-8."""
    if isinstance(payload, Payload):
        return payload.to_json()
    return payload.encode() if isinstance(payload, str) else payload
