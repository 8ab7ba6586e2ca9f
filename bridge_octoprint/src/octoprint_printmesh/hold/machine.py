"""The pure hold machine: ``step(state, input, now, config) -> (state, actions)``.

A hold stops OctoPrint streaming the file (``set_job_on_hold``, not a pause: no pause
scripts, no PrintPaused), drains the printer (M400, M114 for the origin, an echo token),
lets a requester move the head for captures, then returns it and lets the print go on.
The rules that keep a print alive:

* Every path out of a hold emits exactly one ``SetJobOnHold(False)``: release command,
  watchdog, a timeout at any stage, the holder's status going offline, the print
  stopping. A hold never outlives ``max_hold`` (+ ``return_timeout`` for the way back).
* Before the print continues, the head returns to where the hold began (lift, travel,
  lower) and the feed rate, G90/G91 and M82/M83 in force then are restored.
* A move is only planned if the way back is possible too, and both fit their timeouts
  (``limits.py``); one command runs at a time, answered on the printer's echo.

Deadlines are checked on every input; a cancel feeds ``PrintStopped`` before ``cancel_print()``.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from octoprint_printmesh.gcode import barrier
from octoprint_printmesh.hold import outage
from octoprint_printmesh.hold.limits import time_problem
from octoprint_printmesh.hold.safety import Origin, Pos, Refusal, check_gcode, plan_move, plan_return, restore_lines
from octoprint_printmesh.hold.types import (
    Action,
    HoldCommand,
    HoldConfig,
    HoldInput,
    HoldState,
    LayerReached,
    MoveRequested,
    OriginReported,
    Pending,
    PrintStarted,
    PrintStopped,
    PublishEvent,
    ReleaseRequested,
    Reply,
    SendGcode,
    SetJobOnHold,
    Tick,
    TokenSeen,
)
from octoprint_printmesh.hold.types import GcodeRequested as GcodeReq
from octoprint_printmesh.hold.views import held_payload, job_command_refusal, released_payload, status_payload
from printmesh_core.contract import HELD, RELEASED

Step = tuple[HoldState, list[Action]]
__all__ = ["job_command_refusal", "status_payload", "step"]


def _token(state: HoldState, config: HoldConfig) -> tuple[HoldState, str]:
    seq = state.seq + 1
    return replace(state, seq=seq), f"{config.session}.{state.hold_id}.{seq}"


def _running(state: HoldState) -> str:
    return "none" if state.phase == "idle" else f"hold {state.hold_id}, {state.phase}"


def _info(state: HoldState) -> dict[str, object]:
    return {"hold_id": state.hold_id, "layer": state.layer}


def _begin_hold(state: HoldState, now: float, config: HoldConfig, cmd_id: str | None) -> Step:
    state = replace(state, hold_id=state.hold_id + 1)
    state, token = _token(state, config)
    state = replace(
        state, phase="draining", since=now, deadline=now + config.confirm_timeout,
        watchdog=now + config.max_hold, token=token, origin=None, head=None, dirty=False,
        pending=None, hold_reply=cmd_id, release_replies=(), release_reason=None,
    )  # fmt: skip
    lines = (barrier(token)[0], "M114", barrier(token)[1])
    return state, [SetJobOnHold(True), SendGcode(lines), PublishEvent("holding", _info(state))]


def _finish(state: HoldState, reason: str, returned: bool, error: str | None = None) -> Step:
    """Let the print continue: the one place that releases the job."""
    payload = released_payload(state, reason, returned, error)
    actions: list[Action] = [SetJobOnHold(False), PublishEvent(RELEASED, payload)]
    if state.pending is not None:
        actions.append(Reply(state.pending.cmd_id, False, code="interrupted", message=f"hold released: {reason}"))
    if state.hold_reply is not None:
        msg = f"hold ended before it was confirmed: {error or reason}"
        actions.append(Reply(state.hold_reply, False, code="hold_failed", message=msg))
    for cmd_id in state.release_replies:
        if error is None:
            actions.append(Reply(cmd_id, True, {**payload}))
        else:
            actions.append(Reply(cmd_id, False, code="release_incomplete", message=f"{error}; the print was released"))
    idle = HoldState(
        armed=state.armed, holder=state.holder, printing=state.printing, first_seen=state.first_seen,
        last_layer=state.last_layer, seq=state.seq, hold_id=state.hold_id,
        job_path=state.job_path, job_started=state.job_started, reach=state.reach,
    )  # fmt: skip
    return idle, actions


def _release(state: HoldState, now: float, config: HoldConfig, reason: str, cmd_id: str | None = None) -> Step:
    """Start the way back from any phase; when there is nothing to undo, release at once."""
    if state.phase == "idle":
        return state, [Reply(cmd_id, True, {"held": False})] if cmd_id is not None else []
    state = replace(state, release_replies=state.release_replies + ((cmd_id,) if cmd_id is not None else ()))
    if state.phase == "returning":
        return state, []
    if state.phase == "draining" or (not state.dirty and state.head is None):
        return _finish(state, reason, returned=state.phase != "draining")
    actions: list[Action] = []
    if state.pending is not None:  # its lines are sent: the printer ends it before the way back starts
        msg = f"hold released ({reason}) before the printer confirmed this command"
        actions.append(Reply(state.pending.cmd_id, False, code="interrupted", message=msg))
        state = replace(state, pending=None, head=state.pending.end or state.head)
    origin = state.origin
    if origin is None:  # no origin means no move ran; only the modes are unknown
        idle, more = _finish(state, reason, False, "hold origin unknown: modes not restored")
        return idle, actions + more
    state, token = _token(state, config)
    if state.head is None or state.profile is None:
        lines = restore_lines(origin.modes, token, config.safety)
    else:
        plan = plan_return(origin=origin, head=state.head, profile=state.profile, settings=config.safety, token=token)
        if isinstance(plan, Refusal):
            idle, more = _finish(state, reason, False, f"head not returned: {plan.message}")
            return idle, actions + more
        lines = plan.lines
    state = replace(state, phase="returning", token=token, deadline=now + config.return_timeout, release_reason=reason)
    return state, [*actions, SendGcode(lines), PublishEvent("releasing", {**_info(state), "reason": reason})]


def _expire(state: HoldState, now: float, config: HoldConfig) -> Step:
    """Apply whichever deadline has passed; at most one, the next input catches the rest."""
    gone = outage.expire(state, now, config, _release)
    if gone is not None:
        return gone
    if state.phase == "draining" and state.deadline is not None and now >= state.deadline:
        error = f"the printer did not confirm the hold within {config.confirm_timeout:g} s"
        return _finish(state, "confirm_timeout", False, error)
    if state.phase in ("held", "busy") and state.watchdog is not None and now >= state.watchdog:
        return _release(state, now, config, "max_hold")
    if state.phase == "busy" and state.pending is not None and now >= state.pending.deadline:
        pending = state.pending  # sent, so the printer ends it first (FIFO): the way back starts at its end
        msg = f"the printer did not confirm the {pending.kind} within {config.move_timeout:g} s"
        state = replace(state, pending=None, head=pending.end or state.head)
        released, actions = _release(state, now, config, f"{pending.kind}_timeout")
        return released, [Reply(pending.cmd_id, False, code="timeout", message=msg), *actions]
    if state.phase == "returning" and state.deadline is not None and now >= state.deadline:
        error = f"the printer did not confirm the return within {config.return_timeout:g} s"
        return _finish(state, state.release_reason or "return_timeout", False, error)
    return state, []


def _on_hold_command(state: HoldState, cmd: HoldCommand, now: float, config: HoldConfig) -> Step:
    if cmd.holder is not None:  # the holder asked, over the broker: it is there
        state = replace(state, holder=cmd.holder, reach=outage.seen(state.reach))
    if cmd.now:
        if state.phase != "idle":
            return state, [Reply(cmd.cmd_id, True, {**_info(state), "phase": state.phase, "already": True})]
        if not state.printing:
            return state, [Reply(cmd.cmd_id, False, code="not_printing", message="no print is running")]
        return _begin_hold(replace(state, layer=state.last_layer, layer_z=None), now, config, cmd.cmd_id)
    if cmd.plan is None:
        return state, [Reply(cmd.cmd_id, False, code="invalid_request", message="give now, layer or plan")]
    if cmd.plan.exhausted(state.last_layer):
        msg = f"layer {max(cmd.plan.layers)} has already passed (current layer {state.last_layer})"
        return state, [Reply(cmd.cmd_id, False, code="layer_passed", message=msg)]
    plan = cmd.plan.to_model().model_dump()
    state = replace(state, armed=cmd.plan)
    return state, [
        PublishEvent("hold_armed", {"plan": plan, "holder": state.holder}),
        Reply(cmd.cmd_id, True, {"armed": plan}),
    ]


def _on_layer(state: HoldState, event: LayerReached, now: float, config: HoldConfig) -> Step:
    if state.last_layer is not None and event.layer <= state.last_layer:
        return state, []  # repeated or out of order: never hold twice for one layer
    first = not state.first_seen
    state = replace(state, printing=True, first_seen=True, last_layer=event.layer)
    if state.phase != "idle" or state.armed is None or not state.armed.matches(event.layer, event.total, first):
        return state, []
    if not outage.reachable(state):  # nobody could move or release it: recorded for the holder instead
        return outage.miss(state, event, now), []
    return _begin_hold(replace(state, layer=event.layer, layer_z=event.z), now, config, None)


def _on_token(state: HoldState, token: str) -> Step:
    if state.phase == "draining" and token == state.token:
        held = replace(state, phase="held", token=None, deadline=None, hold_reply=None)
        payload = held_payload(state)
        actions: list[Action] = [PublishEvent(HELD, payload)]
        if state.hold_reply is not None:
            actions.append(Reply(state.hold_reply, True, payload))
        return held, actions
    if state.phase == "busy" and state.pending is not None and token == state.pending.token:
        pending = state.pending
        head = pending.end if pending.end is not None else state.head
        held = replace(state, phase="held", pending=None, head=head)
        data = {**_info(state), "position": None if head is None else asdict(head)}
        return held, [
            Reply(pending.cmd_id, True, data),
            PublishEvent("moved" if pending.kind == "move" else "gcode_done", data),
        ]
    if state.phase == "returning" and token == state.token:
        return _finish(state, state.release_reason or "released", True)
    return state, []


def _on_move(state: HoldState, req: MoveRequested, now: float, config: HoldConfig) -> Step:
    def refuse(code: str, message: str, axis: str | None = None, value: float | None = None) -> Step:
        return state, [Reply(req.cmd_id, False, {"axis": axis, "value": value}, code, message)]

    if req.hold_id is not None and (state.phase == "idle" or req.hold_id != state.hold_id):
        return refuse("stale_hold", f"hold {req.hold_id} is not the running hold ({_running(state)})")
    if state.phase == "busy":
        return refuse("busy", f"a {state.pending.kind if state.pending else 'command'} is still running")
    if state.phase != "held":
        return refuse("not_held", f"moves are only accepted while a print is held (now: {state.phase})")
    origin = state.origin
    if origin is None:
        return refuse("no_origin", "the hold origin is unknown (no position reply), so the head could not be returned")
    o = origin.pos
    head = state.head or o
    state, token = _token(state, config)
    layer_z = max(o.z, state.layer_z if state.layer_z is not None else o.z)
    plan = plan_move(
        x=req.x, y=req.y, z=req.z, feedrate=req.feedrate, head=head, layer_z=layer_z,
        homed=req.homed, profile=req.profile, settings=config.safety, token=token,
    )  # fmt: skip
    if isinstance(plan, Refusal):
        return refuse(plan.reason, plan.message, axis=plan.axis, value=plan.value)
    back = plan_return(origin=origin, head=plan.end, profile=req.profile, settings=config.safety, token=token)
    if isinstance(back, Refusal):
        return refuse(back.reason, f"the head could not come back from there: {back.message}")
    slow = time_problem((plan.seconds, config.move_timeout, "move"), (back.seconds, config.return_timeout, "way back"))
    if slow is not None:
        return refuse("too_long", slow, axis="feedrate", value=req.feedrate)
    pending = Pending(req.cmd_id, "move", token, now + config.move_timeout, plan.end)
    state = replace(state, phase="busy", pending=pending, dirty=True, profile=req.profile)
    return state, [SendGcode(plan.lines)]


def _on_gcode(state: HoldState, req: GcodeReq, now: float, config: HoldConfig) -> Step:
    held = state.phase != "idle"
    refusal = check_gcode(req.lines, printing=held or state.printing, settings=config.safety)
    if refusal is not None:
        return state, [Reply(req.cmd_id, False, code=refusal.reason, message=refusal.message)]
    if not held:
        return state, [SendGcode(req.lines), Reply(req.cmd_id, True, {"sent": len(req.lines)})]
    if state.phase != "held":
        return state, [Reply(req.cmd_id, False, code="busy", message=f"the hold is {state.phase}")]
    state, token = _token(state, config)
    pending = Pending(req.cmd_id, "gcode", token, now + config.move_timeout, None)
    return replace(state, phase="busy", pending=pending, dirty=True), [SendGcode((*req.lines, *barrier(token)))]


def step(state: HoldState, event: HoldInput, now: float, config: HoldConfig) -> Step:
    """One input in, the new state and the actions to carry out, in order."""
    state, actions = _expire(state, now, config)
    state, more = _dispatch(state, event, now, config)
    return state, actions + more


def _dispatch(state: HoldState, event: HoldInput, now: float, config: HoldConfig) -> Step:
    if isinstance(event, HoldCommand):
        return _on_hold_command(state, event, now, config)
    if isinstance(event, LayerReached):
        return _on_layer(state, event, now, config)
    if isinstance(event, OriginReported):
        if state.phase == "draining" or (state.phase == "held" and state.origin is None and not state.dirty):
            return replace(state, origin=Origin(Pos(event.x, event.y, event.z), event.modes)), []
        return state, []
    if isinstance(event, TokenSeen):
        return _on_token(state, event.token)
    if isinstance(event, MoveRequested):
        return _on_move(state, event, now, config)
    if isinstance(event, GcodeReq):
        return _on_gcode(state, event, now, config)
    if isinstance(event, ReleaseRequested):
        if event.hold_id is not None and state.phase != "idle" and event.hold_id != state.hold_id:
            msg = f"hold {event.hold_id} is not the running hold ({_running(state)}): nothing released"
            return state, [Reply(event.cmd_id, False, code="stale_hold", message=msg)] if event.cmd_id else []
        if event.disarm and state.armed is not None:
            state = replace(state, armed=None)
        return _release(state, now, config, event.reason, event.cmd_id)
    if isinstance(event, outage.INPUTS):
        return outage.step(state, event, now, config, _release)
    if isinstance(event, PrintStarted):
        state, actions = _finish(state, "print_started", False) if state.phase != "idle" else (state, [])
        state = replace(state, job_path=event.path, job_started=event.started_at)
        return replace(state, printing=True, first_seen=False, last_layer=None), actions
    if isinstance(event, PrintStopped):
        state, actions = _finish(state, event.reason, False) if state.phase != "idle" else (state, [])
        if state.armed is not None:
            actions.append(PublishEvent("hold_disarmed", {"reason": f"print ended ({event.reason})"}))
        return replace(state, printing=False, armed=None, first_seen=False, last_layer=None), actions
    assert isinstance(event, Tick)
    return state, []
