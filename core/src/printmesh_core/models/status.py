"""Presence of one component process."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from printmesh_core.models.base import Payload


class Status(Payload):
    """Retained on ``<node>/<component>/status``; the last will carries ``offline``.

    For the last will, ``ts`` is the time the connection was made, since the broker sends
    it later on our behalf.
    """

    state: Literal["online", "offline"]
    component: str
    version: str
    reason: str | None = Field(default=None, description="Why offline: 'shutdown' or 'lost' (last will).")
    dropped: int = Field(default=0, description="Messages dropped from the offline queue since start.")
