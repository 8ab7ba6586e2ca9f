"""One hold, step by step: move, settle, capture on each camera, store, next point, return, release.

Every step waits for exactly one thing (``Run.pending``) with a deadline. Whatever goes
wrong before the release (a refusal, a timeout, a camera or the bridge gone, a file not
written, the print stopping, an abort) goes through ``fail``: the failure is recorded, the
remaining points are skipped and the release is sent, unless the bridge has already
ended the hold itself (then nothing is sent, so a stale release can never let go of a
later hold). Each hold therefore ends with at most one release, and a held print always
gets one unless the bridge released it first. Which step follows an answer, an image, a
file written or a deadline is decided in ``handlers``.
"""

from __future__ import annotations

from dataclasses import replace

from printmesh_coordinator import report
from printmesh_coordinator.messages import (
    XYZ,
    Command,
    Held,
    HoldReleased,
    Note,
    PublishCapture,
    SendCapture,
    SendMove,
    SendRelease,
    WriteMetadata,
    WriteSummary,
)
from printmesh_coordinator.state import DONE_KEPT, Job, MachineState, Pending, Run, Stats, job_name
from printmesh_core.models.coordinator import CaptureFailure

Step = tuple[MachineState, list[Command]]
CAMERA_PHASES = ("moving", "settling", "capturing", "storing")


def hold_began(bridge_ts: float, now: float, limit: float) -> float:
    """When the printer was held: the bridge's ``held`` time, so the hold's duration includes the
    time its event waited behind other work (a flood) before we saw it. A time in the future or
    more than ``limit`` ago (another machine's clock off) is not believed: then ``now``."""
    return bridge_ts if now - limit <= bridge_ts <= now else now


def next_id(state: MachineState) -> tuple[MachineState, str]:
    seq = state.seq + 1
    return replace(state, seq=seq), f"{state.setup.session}.{seq}"


def current(state: MachineState) -> Run:
    assert state.run is not None
    return state.run


def with_run(state: MachineState, run: Run | None) -> MachineState:
    return replace(state, run=run)


def _job_for(state: MachineState, held: Held) -> Job:
    if held.path is not None or held.started_at is not None:
        started = round(held.started_at, 3) if held.started_at is not None else None
        return Job(job_name(held.path, started), held.path, started)
    return state.job or Job(job_name(None, None), None, None)


def _precheck(state: MachineState, run: Run, now: float) -> CaptureFailure | None:
    """What makes the whole hold impossible before the head moves at all."""
    fit = state.fit
    if fit is None:
        return report.failure("plan_refused", "no printer profile from the bridge yet: the grid is unchecked", now)
    refusal = fit.refusal(state.setup.name)
    if refusal is not None or fit.region is None:
        return report.failure("plan_refused", refusal or "no room on this bed", now)
    if run.origin is None:
        return report.failure("no_origin", "the bridge did not report the hold origin, so it cannot move the head", now)
    if run.capture_z > fit.region.z_max:
        msg = (
            f"capture height Z {run.capture_z:g} (layer Z {run.z} + z_clearance {state.setup.printer.z_clearance:g})"
            f" is above the allowed Z {fit.region.z_max:g}"
        )
        return report.failure("out_of_bounds", msg, now)
    for ref in state.setup.cameras:
        down = state.camera_down(ref)
        if down is not None:
            return report.failure("camera_offline", down, now, camera=ref.tag)
    return None


def begin(state: MachineState, held: Held, now: float) -> Step:
    run = state.run
    if run is not None:
        if run.hold_id == held.hold_id:
            return state, []  # the same event again
        if run.phase == "finishing":
            cmds: list[Command] = []
            if state.queued is not None:  # it is over too (the bridge holds one at a time): leave it alone
                text = f"hold {state.queued.hold_id} ended before it could be handled (hold {held.hold_id} began)"
                cmds.append(Note("warning", f"{state.setup.name}: {text}"))
            return replace(state, queued=held), cmds
        state, cmds = lost(state, now, f"the bridge started hold {held.hold_id}", None)
        return replace(state, queued=held), cmds
    job = _job_for(state, held)
    name = state.setup.name
    if (job.name, held.hold_id) in state.done:
        return state, [Note("info", f"{name}: hold {held.hold_id} was handled already: ignored")]
    if held.layer is None:
        state, rid = next_id(state)
        return state, [
            Note("warning", f"{name}: hold {held.hold_id} has no layer: released"),
            SendRelease(rid, held.hold_id),
        ]
    printer = state.setup.printer
    bases = [v for v in (held.z, held.origin.z if held.origin else None) if v is not None]
    capture_z = round(max(bases, default=0.0) + printer.z_clearance, 3)
    run = Run(hold_id=held.hold_id, layer=held.layer, z=held.z, capture_z=capture_z, origin=held.origin, job=job,
              bridge_ts=held.ts, started=hold_began(held.ts, now, printer.timeouts.sequence),
              deadline=now + printer.timeouts.sequence)  # fmt: skip
    stats = state.stats if state.stats.job == job.name else Stats(job=job.name)
    state = replace(state, run=run, job=job, stats=stats)
    problem = _precheck(state, run, now)
    if problem is not None:
        return fail(state, now, problem)
    return move(state, now, 0)


def move(state: MachineState, now: float, index: int) -> Step:
    state, rid = next_id(state)
    run, printer = current(state), state.setup.printer
    assert state.fit is not None
    p = state.fit.points[index]
    pending = Pending("move", rid, now, now + printer.timeouts.move)
    state = with_run(state, replace(run, phase="moving", point=index, camera=0, pending=pending))
    return state, [SendMove(rid, p.x, p.y, run.capture_z, printer.feedrate, run.hold_id)]


def capture(state: MachineState, now: float, camera: int) -> Step:
    state, rid = next_id(state)
    run = replace(current(state), phase="capturing", camera=camera, answer=None, image=None, settle_until=None)
    state = with_run(state, run)
    ref = state.setup.cameras[camera]
    pending = Pending("capture", rid, now, now + state.setup.printer.timeouts.capture)
    state = with_run(state, replace(run, pending=pending))
    label = report.capture_label(state, run)
    return state, [SendCapture(rid, ref.node, ref.camera, label, ref.width, ref.height, ref.quality)]


def go_back(state: MachineState, now: float) -> Step:
    state, rid = next_id(state)
    run, printer = current(state), state.setup.printer
    assert run.origin is not None
    pending = Pending("return", rid, now, now + printer.timeouts.move)
    state = with_run(state, replace(run, phase="returning", pending=pending))
    return state, [SendMove(rid, run.origin.x, run.origin.y, None, printer.feedrate, run.hold_id)]


def release(state: MachineState, now: float) -> Step:
    state, rid = next_id(state)
    pending = Pending("release", rid, now, now + state.setup.printer.timeouts.release)
    run = replace(current(state), phase="releasing", pending=pending, settle_until=None)
    return with_run(state, run), [SendRelease(rid, run.hold_id)]


def advance(state: MachineState, now: float) -> Step:
    """After an image is stored: the next camera, the next point, or the way out."""
    run = current(state)
    if run.camera + 1 < len(state.setup.cameras):
        return capture(state, now, run.camera + 1)
    assert state.fit is not None
    if run.point + 1 < len(state.fit.points):
        return move(state, now, run.point + 1)
    if state.setup.printer.return_to_origin and run.origin is not None and _reachable(state, run.origin):
        return go_back(state, now)
    return release(state, now)  # the bridge's release brings the head back from anywhere


def _reachable(state: MachineState, origin: XYZ) -> bool:
    """An origin inside the margin (e.g. X0 right after G28) is not a move target: the bridge
    would refuse it; its release returns the head there anyway."""
    region = state.fit.region if state.fit is not None else None
    return region is not None and region.why_outside(origin.x, origin.y) is None


def fail(state: MachineState, now: float, problem: CaptureFailure) -> Step:
    """Record ``problem``, skip what is left and release (the bridge returns the head)."""
    run = current(state)
    run = replace(run, failures=(*run.failures, problem), answer=None, image=None, settle_until=None)
    if run.releasing_or_later:
        return with_run(state, run), []
    state = with_run(state, replace(run, pending=None))
    if state.bridge_online is False:  # nobody will answer: send it for the record, finish now
        state, rid = next_id(state)
        state, cmds = finalize(state, now)
        return state, [SendRelease(rid, run.hold_id), *cmds]
    return release(state, now)


def lost(state: MachineState, now: float, reason: str, info: HoldReleased | None) -> Step:
    """The bridge ended the hold itself (or answered our release through its status/event)."""
    run = state.run
    if run is None or run.phase == "finishing":
        return state, []
    if run.phase == "releasing":
        spent = now - run.pending.since if run.pending is not None else 0.0
        run = replace(run, t_release=run.t_release + spent, release=report.bridge_release(info, True))
        return finalize(with_run(state, run), now)
    problem = report.failure("hold_lost", f"the bridge ended the hold: {reason}", now)
    run = replace(run, failures=(*run.failures, problem), release=report.bridge_release(info, False))
    return finalize(with_run(state, run), now)


def finalize(state: MachineState, now: float) -> Step:
    run = replace(current(state), ended=now, answer=None, image=None, settle_until=None)
    path = report.metadata_path(state, run)
    md = report.metadata(state, run, path)
    pending = Pending("metadata", path, now, now + state.setup.printer.timeouts.release)
    state = with_run(state, replace(run, phase="finishing", pending=pending, metadata=md))
    return state, [WriteMetadata(path, md)]


def complete(state: MachineState, now: float, error: str | None) -> Step:
    """The metadata is on disk (or could not be): publish it, count it, and be ready for the next hold."""
    run = current(state)
    assert run.metadata is not None
    md = run.metadata if error is None else report.unwritten(run.metadata, error, now)
    cmds: list[Command] = [PublishCapture(md)]
    if error is not None:
        cmds.append(Note("error", f"{state.setup.name}: layer {run.layer} metadata not written: {error}"))
    s = state.stats
    stats = Stats(
        job=run.job.name,
        last_layer=run.layer if md.images else s.last_layer,
        images=s.images + len(md.images),
        failures=s.failures + len(md.failures),
        message=md.failures[-1].message if md.failures else None,
    )
    done = (*state.done, run.key)[-DONE_KEPT:]
    queued = state.queued
    state = replace(state, run=None, stats=stats, done=done, queued=None)
    if state.ended is not None and state.ended[0] == run.job.name:
        cmds.append(WriteSummary(run.job.name, state.ended[1], run.job.gcode_file, run.job.started_at))
    if queued is not None:
        state, more = begin(state, queued, now)
        cmds += more
    return state, cmds
