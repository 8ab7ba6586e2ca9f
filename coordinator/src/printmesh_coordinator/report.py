"""Pure views of the machine's state: file names, the layer metadata and the state message."""

from __future__ import annotations

from dataclasses import replace

from printmesh_coordinator.bounds import DEFAULT_PROFILE, grid_center
from printmesh_coordinator.messages import HoldReleased, PublishState
from printmesh_coordinator.state import MachineState, Run, stamp
from printmesh_core.models.camera import CaptureResult
from printmesh_core.models.coordinator import (
    XY,
    CapturedImage,
    CaptureFailure,
    CoordinatorState,
    FailureKind,
    GridSettings,
    HoldTimings,
    LayerCapture,
    Phase,
    ReleaseInfo,
)


def failure(
    kind: FailureKind,
    message: str,
    now: float,
    point: int | None = None,
    camera: str | None = None,
    code: str | None = None,
) -> CaptureFailure:
    return CaptureFailure(kind=kind, message=message, at=round(now, 3), point=point, camera=camera, code=code)


def job_dir(state: MachineState, run: Run) -> str:
    return f"{state.setup.name}/{run.job.name}"


def image_path(state: MachineState, run: Run, result: CaptureResult) -> str:
    """``layer_0010_pos_00_<time>.jpg``; with several cameras the camera's name goes before the time."""
    cams = state.setup.cameras
    tag = f"_{cams[run.camera].tag}" if len(cams) > 1 else ""
    name = f"layer_{run.layer:04d}_pos_{run.point:02d}{tag}_{stamp(result.timestamp)}.jpg"
    return f"{job_dir(state, run)}/{name}"


def metadata_path(state: MachineState, run: Run) -> str:
    return f"{job_dir(state, run)}/layer_{run.layer:04d}_metadata_{stamp(run.started)}.json"


def capture_label(state: MachineState, run: Run) -> str:
    """What the synthetic camera draws into its frame: layer and grid index, machine-readable."""
    cams = state.setup.cameras
    suffix = f" {cams[run.camera].tag}" if len(cams) > 1 else ""
    return f"L{run.layer:04d} P{run.point:02d}{suffix}"


def image_record(state: MachineState, run: Run, result: CaptureResult, path: str) -> CapturedImage:
    ref = state.setup.cameras[run.camera]
    point = state.fit.points[run.point] if state.fit is not None else None
    return CapturedImage(
        path=path,
        position=XY(x=point.x if point else 0.0, y=point.y if point else 0.0),
        z=run.capture_z,
        index=run.point,
        camera=ref.tag,
        camera_node=ref.node,
        capture_id=result.capture_id,
        sha256=result.sha256,
        size=result.size,
        timestamp=result.timestamp,
        geometry=result.geometry,
    )


def release_info(data: dict[str, object] | None, by: str) -> ReleaseInfo:
    data = data or {}
    reason = data.get("reason")
    returned = data.get("returned")
    return ReleaseInfo(
        reason=reason if isinstance(reason, str) else None,
        returned=returned if isinstance(returned, bool) else None,
        by="coordinator" if by == "coordinator" else "bridge",
    )


def bridge_release(info: HoldReleased | None, releasing: bool) -> ReleaseInfo:
    """How a hold ended when the bridge told us (event or status) rather than answering our release."""
    if info is None:
        return ReleaseInfo(by="coordinator" if releasing else "unknown")
    ours = releasing or info.reason == "requested"
    return ReleaseInfo(reason=info.reason, returned=info.returned, by="coordinator" if ours else "bridge")


def settings_of(state: MachineState) -> GridSettings:
    printer = state.setup.printer
    grid = printer.grid
    volume = (state.profile or DEFAULT_PROFILE).volume
    centre = grid_center(grid, volume)
    points = len(state.fit.points) if state.fit is not None else len(grid.points or []) or (grid.size or 1) ** 2
    return GridSettings(
        grid_spacing=grid.spacing if grid.points is None else None,
        grid_center=XY(x=centre.x, y=centre.y),
        grid_size=grid.size if grid.points is None else None,
        points=points,
        z_clearance=printer.z_clearance,
        settle=printer.settle,
        cameras=[c.tag for c in printer.cameras],
        return_to_origin=printer.return_to_origin,
    )


def metadata(state: MachineState, run: Run, path: str) -> LayerCapture:
    ended = run.ended if run.ended is not None else run.started
    duration = max(0.0, ended - run.started)
    parts = run.t_moves + run.t_settle + run.t_capture + run.t_release  # the printer's and the cameras' time
    settings = settings_of(state)
    released = run.release is not None and run.release.by == "coordinator" and run.release.returned is not False
    complete = not run.failures and len(run.images) == settings.points * len(settings.cameras) and released
    return LayerCapture(
        ts=round(ended, 3),
        layer=run.layer,
        z_height=run.z,
        timestamp=round(run.started, 3),
        gcode_file=run.job.gcode_file,
        print_start_time=run.job.started_at,
        printer=state.setup.name,
        job=run.job.name,
        hold_id=run.hold_id,
        coordinator=state.setup.coordinator,
        complete=complete,
        images=list(run.images),
        settings=settings,
        failures=list(run.failures),
        timings=HoldTimings(
            hold_duration=round(duration, 3),
            waiting_for_moves=round(run.t_moves, 3),
            settle=round(run.t_settle, 3),
            capture=round(run.t_capture, 3),
            store=round(run.t_store, 3),
            release=round(run.t_release, 3),
            overhead=round(max(0.0, duration - parts), 3),
        ),
        release=run.release,
        metadata_path=path,
    )


def unwritten(md: LayerCapture, error: str, now: float) -> LayerCapture:
    """The metadata as published when its file could not be written: the failure says so."""
    fail = failure("write_failed", f"metadata {md.metadata_path} not written: {error}", now)
    update = {"failures": [*md.failures, fail], "complete": False, "metadata_path": None, "ts": round(now, 3)}
    return md.model_copy(update=update)


def armed_ok(state: MachineState) -> bool:
    """The bridge has a plan armed we can live with: ours by us, or any by a coordinator of the fleet.

    Another online coordinator's plan is accepted as it is: re-arming over it would make
    two coordinators with different plans take the printer from each other for ever. With
    ``sharing: owners`` the owner arms over it: every member agrees who owns the printer.
    """
    status = state.hold_status
    if status is None or status.armed is None or status.holder is None:
        return False
    if status.holder == state.setup.holder:
        return status.armed == state.setup.plan
    if state.setup.owners and state.owns:
        return False  # ours now (a job boundary, or its holder died): armed again by us
    return state.holder_online


def may_arm(state: MachineState) -> bool:
    """Whether this coordinator arms the printer: always, unless another member of the group owns it."""
    return not state.setup.owners or state.owns is True


def _idle_phase(state: MachineState) -> tuple[Phase, str | None]:
    if state.bridge_online is not True:
        return "waiting", "the bridge is offline" if state.bridge_online is False else "waiting for the bridge"
    if state.fit is None:
        return "waiting", "waiting for the printer profile"
    refusal = state.fit.refusal(state.setup.name)
    if refusal is not None:
        return "refused", refusal
    if not may_arm(state):
        owner = "owned by another coordinator" if state.owns is False else "waiting for its owner to be known"
        return ("armed" if armed_ok(state) else "waiting"), owner
    if armed_ok(state):
        return "armed", state.stats.message
    return "waiting", f"arming failed: {state.arming.error}" if state.arming.error else "arming"


def view(state: MachineState, now: float) -> CoordinatorState:
    run = state.run
    if run is not None:
        phase: Phase = run.phase
        message = run.failures[-1].message if run.failures else None
    else:
        phase, message = _idle_phase(state)
    settings_points = len(state.fit.points) if state.fit is not None else settings_of(state).points
    return CoordinatorState(
        ts=round(now, 3),
        printer=state.setup.name,
        phase=phase,
        message=message,
        plan=state.setup.plan,
        armed=armed_ok(state),
        job=run.job.name if run is not None else state.stats.job,
        layer=run.layer if run is not None else None,
        point=run.point if run is not None else None,
        points=settings_points,
        last_layer=state.stats.last_layer,
        images=state.stats.images + (len(run.images) if run is not None else 0),
        failures=state.stats.failures,
        grid=[XY(x=p.x, y=p.y) for p in state.fit.points] if state.fit is not None else None,
    )


def view_key(state: MachineState) -> tuple[object, ...]:
    """Cheap to compare: the state message is only built and published when this changes."""
    run = state.run
    idle = _idle_phase(state) if run is None else None
    progress = (run.phase, run.point, len(run.images), len(run.failures)) if run is not None else None
    return idle, progress, state.stats, armed_ok(state)


def state_message(before: MachineState, after: MachineState, now: float) -> PublishState | None:
    """The state to publish when what it shows changed; marked when it is only a hold's progress."""
    was, key = view_key(before), view_key(after)
    if key == was:
        return None
    return PublishState(view(after, now), progress_only(before, after, was, key))


def progress_only(before: MachineState, after: MachineState, was: tuple[object, ...], key: tuple[object, ...]) -> bool:
    """The same hold still running, and only its progress (phase, point, images) changed; a new
    failure is news (its message is the state's), not progress."""
    a, b = before.run, after.run
    if a is None or b is None or a.hold_id != b.hold_id or len(a.failures) != len(b.failures):
        return False
    return was[0] == key[0] and was[2:] == key[2:]


def with_release(run: Run, info: ReleaseInfo) -> Run:
    return replace(run, release=info)
