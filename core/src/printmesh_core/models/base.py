"""The base of every JSON payload: strict keys, finite numbers and a timestamp.

Numbers are finite everywhere (``allow_inf_nan=False``), and a time or a coordinate is
bounded (``Timestamp``, ``Seconds``, ``Coord``): a ``NaN`` or a ``1e20`` from another
process is refused when it is read, instead of reaching ``time.gmtime`` or a move.
"""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

TIME_MAX = 4_102_444_800.0  # Unix seconds of 2100-01-01: later is not a time, it is junk
SECONDS_MAX = 1e12  # s: 30,000 years; an estimate may be wild, but a 1e20 is junk
COORD_MAX = 10_000.0  # mm; far beyond any printer, only to keep junk out of the plan code

Timestamp = Annotated[float, Field(ge=0, le=TIME_MAX)]  # Unix seconds
Seconds = Annotated[float, Field(ge=-SECONDS_MAX, le=SECONDS_MAX)]  # a duration or an estimate
Coord = Annotated[float, Field(ge=-COORD_MAX, le=COORD_MAX)]  # mm, in printer coordinates

PART = ConfigDict(extra="forbid", allow_inf_nan=False)  # every model's config: parts of a payload too


def now() -> float:
    """Wall-clock time as Unix seconds, rounded to the millisecond."""
    return round(time.time(), 3)


class Payload(BaseModel):
    """Every JSON payload carries ``ts`` so a reader can tell a fresh value from a stale retained one."""

    model_config = PART

    ts: Timestamp = Field(default_factory=now, description="When the payload was produced, Unix seconds (UTC).")

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()
