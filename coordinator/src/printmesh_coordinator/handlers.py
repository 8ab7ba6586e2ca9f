"""What each answer, image, file outcome and deadline means for the running hold.

The steps themselves (move, capture, release, fail...) are in ``sequence``; this module
only decides which one comes next. Anything that does not match what the run is waiting
for (a late answer after its timeout, another request's image) changes nothing.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import ValidationError

from printmesh_coordinator import report
from printmesh_coordinator.messages import Answer, ImageArrived, Note, WriteImage
from printmesh_coordinator.sequence import (
    Step,
    advance,
    capture,
    complete,
    current,
    fail,
    finalize,
    release,
    with_run,
)
from printmesh_coordinator.state import MachineState, Pending
from printmesh_core.models.camera import CaptureResult
from printmesh_core.topics import is_name


def on_answer(state: MachineState, answer: Answer, now: float) -> Step:
    run = state.run
    if run is None or run.pending is None or run.pending.key != answer.request_id:
        return state, []  # late (after a timeout) or not ours
    pending, printer = run.pending, state.setup.printer
    spent = now - pending.since
    if pending.kind in ("move", "return"):
        run = replace(run, t_moves=run.t_moves + spent, pending=None)
        state = with_run(state, run)
        if not answer.ok:
            what = "the return move" if pending.kind == "return" else f"the move to grid point {run.point}"
            msg = f"{what} was refused: {answer.code}: {answer.message}"
            return fail(state, now, report.failure("move_refused", msg, now, run.point, code=answer.code))
        if pending.kind == "return":
            return release(state, now)
        if printer.settle > 0:
            return with_run(state, replace(run, phase="settling", settle_until=now + printer.settle)), []
        return capture(state, now, 0)
    if pending.kind == "capture":
        cam = state.setup.cameras[run.camera].tag
        if not answer.ok:
            msg = f"camera {cam} could not capture grid point {run.point}: {answer.code}: {answer.message}"
            return fail(state, now, report.failure("capture_failed", msg, now, run.point, cam, answer.code))
        try:
            result = CaptureResult.model_validate(answer.data or {}, strict=True, extra="ignore")
        except ValidationError as exc:
            msg = f"camera {cam} answered with an unreadable result: {exc.errors()[0]['msg']}"
            return fail(state, now, report.failure("capture_failed", msg, now, run.point, cam))
        if not is_name(result.capture_id):  # it must be one topic level and one path component
            msg = f"camera {cam} answered with an unsafe capture id {result.capture_id[:40]!r}"
            return fail(state, now, report.failure("capture_failed", msg, now, run.point, cam))
        state = with_run(state, replace(run, answer=result))
        return _check_capture(state, now)
    if pending.kind == "release":
        run = replace(run, t_release=run.t_release + spent, pending=None)
        if answer.ok:
            run = replace(run, release=report.release_info(answer.data, "coordinator"))
        else:
            msg = f"the release was refused: {answer.code}: {answer.message}"
            problem = report.failure("release_failed", msg, now, code=answer.code)
            run = replace(run, failures=(*run.failures, problem), release=None)
        return finalize(with_run(state, run), now)
    return state, []


def on_image(state: MachineState, image: ImageArrived, now: float) -> Step:
    run = state.run
    if run is None or run.phase != "capturing" or run.pending is None:
        return state, []
    expected = run.answer.capture_id if run.answer is not None else run.pending.key
    if image.capture_id != expected:
        return state, []
    return _check_capture(with_run(state, replace(run, image=image)), now)


def _check_capture(state: MachineState, now: float) -> Step:
    """Both the answer and the image are needed (they travel on different topics, in either order)."""
    run = current(state)
    result, image = run.answer, run.image
    if result is None or image is None or run.pending is None:
        return state, []
    run = replace(run, t_capture=run.t_capture + (now - run.pending.since))
    state = with_run(state, run)
    cam = state.setup.cameras[run.camera].tag
    if image.sha256 != result.sha256 or len(image.data) != result.size:
        msg = (
            f"image from camera {cam} at grid point {run.point} does not match its answer: received "
            f"{len(image.data)} bytes sha256 {image.sha256[:12]}…, announced {result.size} bytes {result.sha256[:12]}…"
        )
        return fail(state, now, report.failure("checksum_mismatch", msg, now, run.point, cam))
    path = report.image_path(state, run, result)
    pending = Pending("store", path, now, now + state.setup.printer.timeouts.capture)
    return with_run(state, replace(run, phase="storing", pending=pending)), [WriteImage(path, image.data)]


def on_written(state: MachineState, path: str, now: float, error: str | None) -> Step:
    run = state.run
    if run is None or run.pending is None or run.pending.key != path:
        if error is not None:
            return state, [Note("error", f"{state.setup.name}: {path} not written: {error}")]
        return state, []
    if run.pending.kind == "metadata":
        return complete(state, now, error)
    answer = run.answer
    if answer is None:
        return state, []
    cam = state.setup.cameras[run.camera].tag
    run = replace(run, t_store=run.t_store + (now - run.pending.since), pending=None)
    if error is not None:
        msg = f"could not write {path}: {error}"
        return fail(with_run(state, run), now, report.failure("write_failed", msg, now, run.point, cam))
    record = report.image_record(state, run, answer, path)
    state = with_run(state, replace(run, images=(*run.images, record), answer=None, image=None))
    return advance(state, now)


def expire(state: MachineState, now: float) -> Step:
    """Apply the one deadline that has passed, if any (``decide`` calls this until none has)."""
    run = state.run
    if run is None:
        return state, []
    pending, t = run.pending, state.setup.printer.timeouts
    if pending is not None and now >= pending.deadline:
        if pending.kind == "metadata":
            return complete(state, now, "no confirmation that it was written")
        if pending.kind == "release":
            msg = f"no answer to the release within {t.release:g} s (the bridge's watchdog releases)"
            problem = report.failure("release_timeout", msg, now)
            run = replace(run, failures=(*run.failures, problem), t_release=run.t_release + now - pending.since)
            return finalize(with_run(state, run), now)
        cam = state.setup.cameras[run.camera].tag if pending.kind in ("capture", "store") else None
        if pending.kind == "capture":
            missing = "answer and image" if run.answer is None and run.image is None else (
                "image" if run.image is None else "answer")  # fmt: skip
            msg = f"camera {cam}: no {missing} for grid point {run.point} within {t.capture:g} s"
            return fail(state, now, report.failure("capture_timeout", msg, now, run.point, cam))
        if pending.kind == "store":
            return fail(state, now, report.failure("write_failed", f"{pending.key}: no confirmation", now, run.point))
        what = "the return move" if pending.kind == "return" else f"the move to grid point {run.point}"
        msg = f"no answer to {what} within {t.move:g} s"
        return fail(state, now, report.failure("move_timeout", msg, now, run.point))
    if run.phase == "settling" and run.settle_until is not None and now >= run.settle_until:
        settled = now - (run.settle_until - state.setup.printer.settle)
        return capture(with_run(state, replace(run, t_settle=run.t_settle + settled)), now, 0)
    if not run.releasing_or_later and now >= run.deadline:
        msg = f"the hold took longer than timeouts.sequence ({t.sequence:g} s); stopped at grid point {run.point}"
        return fail(state, now, report.failure("sequence_timeout", msg, now, run.point))
    return state, []
