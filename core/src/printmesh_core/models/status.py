"""Presence of one component process."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from printmesh_core.models.base import Payload


class Status(Payload):
    """Retained on ``<node>/<component>/status``; the last will carries ``offline``.

    The last will is registered once, when the process starts, and the broker sends it
    later on our behalf: in the will, ``ts`` is the process start time and ``dropped`` is 0.
    Read the time the node was lost from when the message arrived.
    """

    state: Literal["online", "offline"]
    component: str
    version: str
    reason: str | None = Field(default=None, description="Why offline: 'shutdown' or 'lost' (last will).")
    dropped: int = Field(default=0, description="Messages dropped from the offline queue since start.")
    rejected: int = Field(
        default=0, description="Messages received and refused (malformed, too long, too deep) since start."
    )
    failed: int = Field(default=0, description="Messages whose handling raised an unexpected error since start.")
    evicted: int = Field(
        default=0,
        description="Entries evicted from bounded per-sender tables (unknown peers, printers, topics) since start.",
    )


class Availability(Payload):
    """Retained availability of one item inside a component (a sensor, a camera).

    Home Assistant entities of that item require both this and the component's status
    (``availability_mode: all``), so a broken sensor goes unavailable while the agent runs.
    """

    state: Literal["online", "offline"]
    reason: str | None = Field(default=None, description="Why offline, e.g. 'no good read for 120 s'.")
