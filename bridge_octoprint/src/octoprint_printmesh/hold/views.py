"""What the outside sees of a hold: the retained status, the 'held' event, and refusals.

Each view is built here and nowhere else, so the status topic, the event that starts a
coordinator's captures, and the hold command's answer can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from octoprint_printmesh.hold.safety import Pos
from octoprint_printmesh.hold.types import HoldState
from printmesh_core.models.printer import Point, PrinterHold


def _point(pos: Pos | None) -> Point | None:
    return None if pos is None else Point(x=pos.x, y=pos.y, z=pos.z)


def held_payload(state: HoldState) -> dict[str, Any]:
    """The 'held' event (and the hold command's answer): which hold, where, and which print.

    ``origin`` is where the head stopped; ``z`` the layer's Z, the floor for any move.
    """
    origin = None if state.origin is None else state.origin.pos
    return {
        "hold_id": state.hold_id,
        "layer": state.layer,
        "origin": None if origin is None else asdict(origin),
        "z": state.layer_z,
        "path": state.job_path,
        "started_at": state.job_started,
    }


def status_payload(state: HoldState, now: float) -> PrinterHold:
    """The retained ``<node>/printer/hold`` message for this state."""
    origin = state.origin.pos if state.origin is not None else None
    active = state.phase != "idle"
    return PrinterHold(
        ts=now,
        phase=state.phase,
        hold_id=state.hold_id if active else None,
        layer=state.layer if active else None,
        since=state.since if active else None,
        deadline=state.watchdog if active else None,
        holder=state.holder,
        origin=_point(origin) if active else None,
        head=_point(state.head or origin) if active else None,
        armed=state.armed.to_model() if state.armed is not None else None,
    )


def job_command_refusal(state: HoldState, command: Literal["pause", "resume", "cancel"]) -> str | None:
    """Why OctoPrint's pause/resume must not run now, or None.

    A pause or resume during a hold fights over the same file stream (a resume would
    not lift the hold; a pause would record our capture position as the pause position).
    Cancel is always allowed: the shell feeds ``PrintStopped`` first, which releases.
    """
    if command != "cancel" and state.phase != "idle":
        return f"the print is held by printmesh ({state.phase}); release it first"
    return None
