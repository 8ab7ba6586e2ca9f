"""The base of every JSON payload: strict keys and a timestamp."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field


def now() -> float:
    """Wall-clock time as Unix seconds, rounded to the millisecond."""
    return round(time.time(), 3)


class Payload(BaseModel):
    """Every JSON payload carries ``ts`` so a reader can tell a fresh value from a stale retained one."""

    model_config = ConfigDict(extra="forbid")

    ts: float = Field(default_factory=now, description="When the payload was produced, Unix seconds (UTC).")

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()
