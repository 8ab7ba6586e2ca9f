"""``decide(state, message, now) -> (state, commands)``: one printer's coordinator, without I/O.

The machine keeps the bridge armed with the plan (re-arming whenever the bridge's
retained hold status shows the plan gone, e.g. after every print), checks the grid
against the printer's profile, and runs each hold through ``sequence``. Time only
enters through ``now``; the shell feeds a ``Tick`` at ``next_deadline(state)``, so
nothing here ever sleeps or reads a clock.
"""

from __future__ import annotations

from dataclasses import replace

from printmesh_coordinator import handlers, missed, report, sequence
from printmesh_coordinator.bounds import check_fit
from printmesh_coordinator.messages import (
    Abort,
    ActivitySeen,
    Answer,
    BridgePresence,
    CameraPresence,
    Command,
    CoordinatorPresence,
    Held,
    HoldReleased,
    HoldStatusSeen,
    ImageArrived,
    Input,
    JobSeen,
    LayerMissedSeen,
    Note,
    OwnerSeen,
    PrintEnded,
    ProfileSeen,
    SendHold,
    Tick,
    WriteFailed,
    WriteSummary,
    Written,
)
from printmesh_coordinator.state import Arming, Job, MachineState, Stats, job_name
from printmesh_core.models.coordinator import FailureKind
from printmesh_core.models.printer import PrinterHold

Step = tuple[MachineState, list[Command]]
ARMED_GUARD = 1.0  # s after an answered hold request before another is sent, while the status catches up
EXPIRE_ROUNDS = 8


def decide(state: MachineState, message: Input, now: float) -> Step:
    """One input in: the new state and the commands to carry out, in order."""
    if isinstance(message, HoldStatusSeen):
        quick = _hold_status_only(state, message, now)
        if quick is not None:
            return quick, []
    start = state
    cmds: list[Command] = []
    for _ in range(EXPIRE_ROUNDS):
        state, more = _expire(state, now)
        if not more:
            break
        cmds += more
    state, more = _dispatch(state, message, now)
    cmds += more
    state, more = _reconcile(state, now)
    cmds += more
    if state is not start and (publish := report.state_message(start, state, now)) is not None:
        cmds.append(publish)
    return state, cmds


def _hold_status_only(state: MachineState, message: HoldStatusSeen, now: float) -> MachineState | None:
    """The bridge's hold status repeated with only its phase or time changed (``busy``/``held``
    around every move: 22 of them a hold): nothing is due, nothing to re-arm, the published
    state stays the same; so only the status is kept. None when the whole decision must run."""
    old, new = state.hold_status, message.status
    if old is None or _ends_hold(new, state) or message.holder_online != state.holder_online:
        return None
    if new.holder != old.holder or new.armed != old.armed:
        return None  # what armed_ok (the published state, the re-arming) reads
    due = next_deadline(state)
    if due is not None and due <= now:
        return None  # a deadline to act on first
    return replace(state, hold_status=new)


def next_deadline(state: MachineState) -> float | None:
    """When the machine next wants a ``Tick``; None when only a message can move it on."""
    times: list[float] = []
    arming = state.arming
    if arming.deadline is not None:
        times.append(arming.deadline)
    elif _wants_arming(state):
        times.append(arming.retry_at)
    run = state.run
    if run is not None:
        if run.pending is not None:
            times.append(run.pending.deadline)
        if run.settle_until is not None:
            times.append(run.settle_until)
        if not run.releasing_or_later:
            times.append(run.deadline)
    return min(times) if times else None


# ------------------------------------------------------------------ arming
def _wants_arming(state: MachineState) -> bool:
    fit = state.fit
    ready = state.bridge_online is True and fit is not None and fit.ok and report.may_arm(state)
    return ready and state.arming.request_id is None and not report.armed_ok(state)


def _reconcile(state: MachineState, now: float) -> Step:
    if not _wants_arming(state) or now < state.arming.retry_at:
        return state, []
    state, rid = sequence.next_id(state)
    arming = replace(state.arming, request_id=rid, deadline=now + state.setup.printer.timeouts.arm)
    return replace(state, arming=arming), [SendHold(rid, state.setup.plan, state.setup.holder)]


def _on_arm_answer(state: MachineState, answer: Answer, now: float) -> Step:
    if answer.ok:
        return replace(state, arming=Arming(retry_at=now + ARMED_GUARD)), []
    error = f"{answer.code}: {answer.message}"
    arming = Arming(retry_at=now + state.setup.printer.timeouts.arm, error=error)
    return replace(state, arming=arming), [Note("warning", f"{state.setup.name}: arming refused: {error}")]


# ------------------------------------------------------------------ time
def _expire(state: MachineState, now: float) -> Step:
    arming = state.arming
    if arming.deadline is not None and now >= arming.deadline:
        error = f"no answer to the hold request within {state.setup.printer.timeouts.arm:g} s"
        state = replace(state, arming=Arming(retry_at=now, error=error))
        return state, [Note("warning", f"{state.setup.name}: {error}")]
    return handlers.expire(state, now)


# ------------------------------------------------------------------ inputs
def _dispatch(state: MachineState, message: Input, now: float) -> Step:
    if isinstance(message, Answer):
        if message.request_id == state.arming.request_id:
            return _on_arm_answer(state, message, now)
        return handlers.on_answer(state, message, now)
    if isinstance(message, ImageArrived):
        return handlers.on_image(state, message, now)
    if isinstance(message, Written):
        return handlers.on_written(state, message.path, now, None)
    if isinstance(message, WriteFailed):
        return handlers.on_written(state, message.path, now, message.error)
    if isinstance(message, Held):
        if state.setup.owners and not _holds_for_us(state):
            return state, []  # the bridge held for its plan's holder: another coordinator's hold
        return sequence.begin(state, message, now)
    if isinstance(message, HoldReleased):
        run = state.run
        if run is not None and message.hold_id == run.hold_id:
            reason = message.reason or "unknown"
            return sequence.lost(state, now, f"released ({reason})", message)
        return state, []
    if isinstance(message, LayerMissedSeen):
        return missed.record(state, message)
    if isinstance(message, HoldStatusSeen):
        state = replace(state, hold_status=message.status, holder_online=message.holder_online)
        return _on_hold_status(state, message.status, now)
    if isinstance(message, ProfileSeen):
        return _on_profile(state, message)
    if isinstance(message, JobSeen):
        return _on_job(state, message), []
    if isinstance(message, ActivitySeen):
        was = state.active
        state = replace(state, active=message.active)
        if message.active and was is not True:
            return replace(state, ended=None), []
        if not message.active and was is True:
            return _print_ended(state, now, "unknown")
        return state, []
    if isinstance(message, PrintEnded):
        return _print_ended(replace(state, active=False), now, message.outcome)
    if isinstance(message, BridgePresence):
        return _on_bridge(state, message.online, now)
    if isinstance(message, CameraPresence):
        return _on_camera(state, message, now)
    if isinstance(message, CoordinatorPresence):
        return _on_peer(state, message), []
    if isinstance(message, OwnerSeen):
        return replace(state, owns=message.mine), []
    if isinstance(message, Abort):
        return _interrupt(state, now, "aborted", f"aborted: {message.reason}")
    assert isinstance(message, Tick)
    return state, []


def _holds_for_us(state: MachineState) -> bool:
    """The bridge's one holder decides who handles a hold: the holder its hold status names. The
    bridge publishes that status (phase ``draining``) before the ``held`` event, on one connection,
    and the link hands both on in order; with ``sharing: owners`` nobody arms over a live holder
    mid-job, so the holder cannot change between the two."""
    return state.hold_status is not None and state.hold_status.holder == state.setup.holder


def _on_peer(state: MachineState, message: CoordinatorPresence) -> MachineState:
    """O(1): only the holder of the bridge's plan matters; the shell keeps the bounded set of peers."""
    status = state.hold_status
    if status is None or status.holder != message.holder or state.holder_online == message.online:
        return state
    return replace(state, holder_online=message.online)


def _interrupt(state: MachineState, now: float, kind: FailureKind, text: str) -> Step:
    """End the running hold early (before its release) with this failure."""
    run = state.run
    if run is None or run.releasing_or_later:
        return state, []
    problem = report.failure(kind, text, now, run.point)
    return sequence.fail(state, now, problem)


def _ends_hold(status: PrinterHold, state: MachineState) -> bool:
    """The bridge's retained hold status says our hold is over (newer than our 'held' event)."""
    run = state.run
    if run is None or run.phase == "finishing" or status.ts < run.bridge_ts:
        return False
    return status.phase == "idle" or (status.hold_id is not None and status.hold_id != run.hold_id)


def _on_hold_status(state: MachineState, status: PrinterHold, now: float) -> Step:
    if not _ends_hold(status, state):
        return state, []
    what = f"its hold status is {status.phase}" + (f" (hold {status.hold_id})" if status.hold_id else "")
    return sequence.lost(state, now, what, None)


def _on_profile(state: MachineState, message: ProfileSeen) -> Step:
    old = state.fit.refusal(state.setup.name) if state.fit is not None else None
    fit = check_fit(state.setup.printer, message.profile)
    state = replace(state, profile=message.profile, fit=fit)
    refusal = fit.refusal(state.setup.name)
    if refusal is not None and refusal != old:
        return state, [Note("error", refusal)]
    return state, []


def _on_job(state: MachineState, message: JobSeen) -> MachineState:
    job = message.job
    if job.started_at is None:
        return state
    path, started = job.file_path or job.file_name, round(job.started_at, 3)
    current = Job(job_name(path, started), path, started)
    stats = state.stats if state.stats.job == current.name else Stats(job=current.name)
    return replace(state, job=current, stats=stats)


def _print_ended(state: MachineState, now: float, outcome: str) -> Step:
    job = state.job
    cmds: list[Command] = []
    if job is not None:
        previous = state.ended
        fresh = previous is None or previous[0] != job.name or (previous[1] == "unknown" and outcome != "unknown")
        if fresh:
            state = replace(state, ended=(job.name, outcome))
            if state.run is None:
                cmds.append(WriteSummary(job.name, outcome, job.gcode_file, job.started_at))
    state, more = _interrupt(state, now, "print_stopped", f"the print stopped ({outcome})")
    return state, cmds + more


def _on_bridge(state: MachineState, online: bool, now: float) -> Step:
    state = replace(state, bridge_online=online)
    if online:
        return state, []
    state = replace(state, arming=Arming())  # its answer will not come; arm again once it is back
    run = state.run
    if run is None or run.phase == "finishing":
        return state, []
    if run.phase == "releasing":
        problem = report.failure("bridge_offline", "the bridge went offline during the release", now)
        run = replace(run, failures=(*run.failures, problem))
        return sequence.finalize(replace(state, run=run), now)
    return _interrupt(state, now, "bridge_offline", "the bridge went offline (its watchdog releases the print)")


def _on_camera(state: MachineState, message: CameraPresence, now: float) -> Step:
    key = (message.node, message.camera)
    down = dict(state.down)
    if message.online:
        down.pop(key, None)
    else:
        down[key] = message.reason or "offline"
    state = replace(state, down=down)
    run = state.run
    if message.online or run is None or run.phase not in sequence.CAMERA_PHASES:
        return state, []
    for ref in state.setup.cameras:
        why = state.camera_down(ref)
        if why is not None and ref.node == message.node:
            problem = report.failure("camera_offline", why, now, run.point, ref.tag)
            return sequence.fail(state, now, problem)
    return state, []
