"""The OctoPrint bridge's hold, as the outside sees it (``<node>/printer/hold``, ``held``, ``released``).

Kept apart from the printer's telemetry (``printer.py``, which re-exports these) because a
hold is its own conversation: the retained status of the hold machine, the message that
starts a hold (read by coordinators to begin their captures) and the one that ends it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART, Coord, Payload, Timestamp
from printmesh_core.models.printer_commands import LAYER_MAX, HoldPlan

HoldPhase = Literal["idle", "draining", "held", "busy", "returning"]


class _Part(BaseModel):
    model_config = PART


class Point(_Part):
    x: Coord = Field(description="mm.")
    y: Coord = Field(description="mm.")
    z: Coord = Field(description="mm.")


class PrinterHold(Payload):
    """Retained on ``<node>/printer/hold``: what the hold machine is doing right now."""

    phase: HoldPhase = Field(description="idle, draining (waiting for the buffer), held, busy (moving), returning.")
    hold_id: int | None = Field(default=None, description="Counts holds since the plugin started.")
    layer: int | None = Field(default=None, description="Layer the hold happened at.")
    since: Timestamp | None = Field(default=None, description="When the hold was requested, Unix seconds.")
    deadline: Timestamp | None = Field(default=None, description="When the watchdog starts the release, Unix seconds.")
    holder: str | None = Field(default=None, description="Component whose status the hold is tied to.")
    origin: Point | None = Field(default=None, description="Where the head was when held; it returns there.")
    head: Point | None = Field(
        default=None,
        description=(
            "Where the head is now during a hold: the origin when held, then the target of each confirmed move; "
            "null when idle"
        ),
    )
    armed: HoldPlan | None = Field(default=None, description="The plan armed for this or the next print.")


class HoldStarted(_Part):
    """The body of the ``held`` event: the print stopped right before ``layer``'s first line."""

    hold_id: int = Field(description="Counts holds since the plugin started; give it back to move and release.")
    layer: int | None = Field(
        default=None, ge=1, le=LAYER_MAX, description="Layer the hold happened at (null for a hold 'now')."
    )
    origin: Point | None = Field(default=None, description="Where the head was when held; it returns there.")
    z: Coord | None = Field(default=None, description="Z of the layer about to be printed, mm.")
    path: str | None = Field(default=None, description="The printed file's path in its storage.")
    started_at: Timestamp | None = Field(default=None, description="When the print started, Unix seconds.")


class PrinterHeld(Payload):
    """``<node>/printer/held`` (not retained), and the same message on ``<node>/printer/event``.

    A ``PrinterEvent`` whose payload is typed: the message that starts a hold. Its own topic
    carries nothing else, so coordinators can share it (MQTT 5 shared subscription).
    """

    event: Literal["held"] = Field(default="held", description="Always 'held'.")
    payload: HoldStarted = Field(description="Which hold, where the head was, which layer and file.")
    source: Literal["printmesh"] = Field(default="printmesh", description="Always printmesh's hold machine.")


class HoldEnded(_Part):
    """The body of the ``released`` event on ``<node>/printer/event``: a hold ended, whoever asked."""

    hold_id: int | None = Field(default=None, description="The hold that ended.")
    layer: int | None = Field(default=None, description="Layer it happened at.")
    reason: str | None = Field(default=None, description="Why: 'released', 'max_hold', 'holder_offline', ...")
    returned: bool | None = Field(default=None, description="The head went back to where it was held.")
    error: str | None = Field(default=None, description="What went wrong on the way back, if anything.")


class LayerMissed(_Part):
    """The body of the ``missed`` event on ``<node>/printer/event``: a planned layer passed unheld.

    The bridge holds only while its holder can reach it: with the broker away (or the
    holder's status not yet seen online again after a reconnect) nobody could move or
    release the print, so the layer goes by and this records it. It is published once the
    holder is back (so it hears it); the holder's coordinator writes it into the job folder.
    """

    layer: int = Field(ge=1, le=LAYER_MAX, description="The planned layer that passed without a hold.")
    z: Coord | None = Field(default=None, description="Z of that layer, mm.")
    reason: str = Field(
        description="broker_unreachable (the bridge had no broker), holder_unreachable (the holder's status "
        "was not seen online again yet, or it went offline)."
    )
    at: Timestamp = Field(description="When the layer started, Unix seconds (bridge clock).")
    path: str | None = Field(default=None, description="The printed file's path in its storage.")
    started_at: Timestamp | None = Field(default=None, description="When the print started, Unix seconds.")
    holder: str | None = Field(default=None, description="The holder the plan was armed for.")


PrinterHold.model_rebuild()
