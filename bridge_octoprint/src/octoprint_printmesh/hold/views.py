"""What the outside sees of a hold: the retained status, the 'held' and 'released' events, and refusals.

Each view is built here and nowhere else, so the status topic, the event that starts a
coordinator's captures, and the hold command's answer can never disagree. The event bodies
are built as the contract's models (``HoldStarted``, ``HoldEnded``: strict, so a field the
readers do not know fails here, in tests) and handed on as their JSON-ready dicts, which is
what the machine's actions carry and what goes on the wire.
"""

from __future__ import annotations

from typing import Any

from octoprint_printmesh.hold.safety import Pos
from octoprint_printmesh.hold.types import HoldState, Missed
from printmesh_core import contract
from printmesh_core.models.printer import HoldEnded, HoldStarted, LayerMissed, Point, PrinterHold


def _point(pos: Pos | None) -> Point | None:
    return None if pos is None else Point(x=pos.x, y=pos.y, z=pos.z)


def held_payload(state: HoldState) -> dict[str, Any]:
    """The 'held' event's body, a ``HoldStarted`` (and the hold command's answer): which hold, where, which print.

    ``origin`` is where the head stopped; ``z`` the layer's Z, the floor for any move.
    """
    body = HoldStarted(
        hold_id=state.hold_id,
        layer=state.layer,
        origin=_point(None if state.origin is None else state.origin.pos),
        z=state.layer_z,
        path=state.job_path,
        started_at=state.job_started,
    )
    return body.model_dump()


def released_payload(state: HoldState, reason: str, returned: bool, error: str | None) -> dict[str, Any]:
    """The 'released' event's body, a ``HoldEnded`` (and the release command's answer): which hold ended, and how."""
    body = HoldEnded(hold_id=state.hold_id, layer=state.layer, reason=reason, returned=returned, error=error)
    return body.model_dump()


def missed_payload(missed: Missed, holder: str | None) -> dict[str, Any]:
    """The 'missed' event's body, a ``LayerMissed``: a planned layer passed unheld, and why."""
    body = LayerMissed(
        layer=missed.layer, z=missed.z, reason=missed.reason, at=missed.at,
        path=missed.path, started_at=missed.started_at, holder=holder,
    )  # fmt: skip
    return body.model_dump()


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


def job_command_refusal(state: HoldState, command: str) -> str | None:
    """Why OctoPrint's pause/resume must not run now, or None.

    A pause or resume during a hold fights over the same file stream (a resume would
    not lift the hold; a pause would record our capture position as the pause position).
    Cancel is always allowed: the shell feeds ``PrintStopped`` first, which releases.
    """
    if command != contract.CANCEL.name and state.phase != "idle":
        return f"the print is held by printmesh ({state.phase}); release it first"
    return None
