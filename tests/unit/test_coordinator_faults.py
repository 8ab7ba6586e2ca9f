"""Coordinator pure core: every failure and every timeout aborts, releases once and tells the truth.

The shape of each test: start a hold, break one thing, and check that the remaining points
are skipped, exactly one release goes out (none when the bridge ended the hold itself),
and the metadata carries the failure with its kind, point and camera.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from coordinator_support import Sim, held, hold_status, printer_config

from printmesh_coordinator.machine import next_deadline
from printmesh_coordinator.messages import (
    XYZ,
    Abort,
    ActivitySeen,
    Answer,
    BridgePresence,
    CameraPresence,
    HoldReleased,
    ImageArrived,
    PrintEnded,
    PublishCapture,
    SendCapture,
    SendMove,
    SendRelease,
    Tick,
    WriteFailed,
    WriteImage,
    WriteMetadata,
)
from printmesh_core.models.coordinator import LayerCapture


def started(**config: object) -> Sim:
    sim = Sim(printer_config(**config)).ready()
    sim.feed(held())
    return sim


def at_capture(**config: object) -> Sim:
    sim = started(**config)
    sim.ok(sim.last(SendMove), dt=0.1)
    sim.feed(Tick(), dt=0.5)
    assert sim.state.run.phase == "capturing"
    return sim


def released(sim: Sim, data: dict[str, object] | None = None) -> LayerCapture:
    """Answer the one release, confirm the metadata file, and return the published metadata."""
    assert len(sim.of(SendRelease)) == 1
    sim.ok(sim.last(SendRelease), data or {"reason": "requested", "returned": True})
    sim.written(sim.last(WriteMetadata))
    assert sim.state.run is None
    md: LayerCapture = sim.last(PublishCapture).metadata
    assert not md.complete
    return md


def moves_after_release(sim: Sim) -> list[SendMove]:
    i = next(i for i, c in enumerate(sim.out) if isinstance(c, SendRelease))
    return [c for c in sim.out[i:] if isinstance(c, SendMove)]


# ------------------------------------------------------------------ moves
def test_refused_move_aborts_and_releases_with_the_bridges_code():
    sim = started()
    sim.refuse(sim.last(SendMove), "below_layer")
    md = released(sim)
    f = md.failures[0]
    assert (f.kind, f.code, f.point) == ("move_refused", "below_layer", 0)
    assert "the move to grid point 0 was refused: below_layer" in f.message
    assert not md.images and not sim.of(SendCapture) and len(sim.of(SendMove)) == 1


def test_refused_move_later_in_the_grid_keeps_the_images_taken():
    sim = started()
    sim.ok(sim.last(SendMove))
    sim.feed(Tick(), dt=0.5)
    sim.capture(sim.last(SendCapture))
    sim.written(sim.last(WriteImage))
    sim.refuse(sim.last(SendMove), "out_of_range")
    md = released(sim)
    assert len(md.images) == 1 and md.failures[0].point == 1 and not moves_after_release(sim)


def test_move_timeout():
    sim = started()
    assert next_deadline(sim.state) == pytest.approx(sim.now + 30)
    sim.feed(Tick(), dt=29.9)
    assert not sim.of(SendRelease)
    sim.feed(Tick(), dt=0.1)
    md = released(sim)
    assert md.failures[0].kind == "move_timeout" and "within 30 s" in md.failures[0].message


def test_late_move_answer_after_its_timeout_is_ignored():
    sim = started()
    move = sim.last(SendMove)
    sim.feed(Tick(), dt=30)
    sim.ok(move)
    assert not sim.of(SendCapture) and sim.state.run.phase == "releasing"


def test_return_move_refused_still_releases():
    sim = started(grid={"size": 1}, settle=0)
    sim.run_grid()
    ret = sim.last(SendMove)
    assert ret.z is None and sim.state.run.phase == "returning"
    sim.refuse(ret, "busy")
    md = released(sim)
    assert md.failures[0].kind == "move_refused" and "the return move was refused" in md.failures[0].message
    assert len(md.images) == 1


def test_return_move_timeout_still_releases():
    sim = started(grid={"size": 1}, settle=0)
    sim.run_grid()
    sim.feed(Tick(), dt=30)
    md = released(sim)
    assert md.failures[0].kind == "move_timeout" and "the return move" in md.failures[0].message


# ------------------------------------------------------------------ cameras
def test_camera_error_answer():
    sim = at_capture()
    sim.refuse(sim.last(SendCapture), "unknown_camera")
    md = released(sim)
    f = md.failures[0]
    assert (f.kind, f.camera, f.code, f.point) == ("capture_failed", "bed", "unknown_camera", 0)


def test_camera_answer_that_is_not_a_capture_result():
    sim = at_capture()
    sim.ok(sim.last(SendCapture), {"nonsense": 1})
    md = released(sim)
    assert md.failures[0].kind == "capture_failed" and "unreadable" in md.failures[0].message


@pytest.mark.parametrize("got", ["nothing", "answer only", "image only"])
def test_capture_timeout_says_what_was_missing(got):
    sim = at_capture()
    cap = sim.last(SendCapture)
    if got == "image only":
        sim.feed(ImageArrived(cap.request_id, b"x", "00"))
    elif got == "answer only":
        data = {"capture_id": cap.request_id, "request_id": cap.request_id, "camera": "bed", "topic": "t",
                "timestamp": 1.0, "width": 1, "height": 1, "size": 1, "sha256": "00", "quality": 85,
                "source": "synthetic"}  # fmt: skip
        sim.ok(cap, data)
    assert next_deadline(sim.state) == pytest.approx(sim.now + 15)
    sim.feed(Tick(), dt=14.9)
    assert not sim.of(SendRelease)
    sim.feed(Tick(), dt=0.1)
    md = released(sim)
    missing = {"nothing": "no answer and image", "answer only": "no image", "image only": "no answer"}[got]
    assert md.failures[0].kind == "capture_timeout" and missing in md.failures[0].message


def test_checksum_mismatch_is_not_stored():
    sim = at_capture()
    sim.capture(sim.last(SendCapture), corrupt=True)
    md = released(sim)
    assert md.failures[0].kind == "checksum_mismatch" and not sim.of(WriteImage)


@pytest.mark.parametrize("capture_id", ["..", ".", ".x", "a/b", "x" * 65])
def test_an_unsafe_capture_id_in_an_answer_is_a_failed_capture_not_a_path(capture_id):
    sim = at_capture()
    answer, _ = sim.capture_messages(sim.last(SendCapture))
    sim.feed(replace(answer, data={**(answer.data or {}), "capture_id": capture_id}))
    md = released(sim)
    assert md.failures[0].kind == "capture_failed" and "unsafe capture id" in md.failures[0].message
    assert not sim.of(WriteImage)


@pytest.mark.parametrize("camera", ["bed", None])
def test_camera_or_its_agent_going_offline_mid_grid(camera):
    sim = at_capture()
    sim.feed(CameraPresence("cam", camera, False, "lost"))
    md = released(sim)
    f = md.failures[0]
    assert f.kind == "camera_offline" and f.camera == "bed" and "lost" in f.message
    sim.ok(sim.of(SendCapture)[-1], {})  # a late answer changes nothing


def test_an_unrelated_camera_going_offline_changes_nothing():
    sim = at_capture()
    sim.feed(CameraPresence("elsewhere", None, False, "lost"))
    sim.feed(CameraPresence("cam", "other", False, "lost"))
    assert sim.state.run.phase == "capturing" and not sim.of(SendRelease)


def test_camera_offline_before_the_hold_releases_without_moving():
    sim = Sim().ready()
    sim.feed(CameraPresence("cam", None, False, "lost"))
    sim.feed(held())
    assert not sim.of(SendMove)
    md = released(sim)
    assert md.failures[0].kind == "camera_offline" and "camera agent cam is offline (lost)" in md.failures[0].message


def test_camera_back_online_is_used_again():
    sim = Sim().ready()
    sim.feed(CameraPresence("cam", "bed", False, "unplugged"))
    sim.feed(CameraPresence("cam", "bed", True))
    sim.feed(held())
    assert sim.of(SendMove)


# ------------------------------------------------------------------ files
def test_image_write_failure_disk_full():
    sim = at_capture()
    sim.capture(sim.last(SendCapture))
    sim.feed(WriteFailed(sim.last(WriteImage).path, "No space left on device"))
    md = released(sim)
    f = md.failures[0]
    assert f.kind == "write_failed" and "No space left on device" in f.message and not md.images


def test_unconfirmed_image_write_times_out():
    sim = at_capture()
    sim.capture(sim.last(SendCapture))
    sim.feed(Tick(), dt=15)
    md = released(sim)
    assert md.failures[0].kind == "write_failed" and "no confirmation" in md.failures[0].message


def test_metadata_write_failure_is_published_with_the_failure():
    sim = started(grid={"size": 1}, settle=0)
    sim.run_grid()
    sim.ok(sim.last(SendMove))
    sim.ok(sim.last(SendRelease), {"reason": "requested", "returned": True})
    sim.feed(WriteFailed(sim.last(WriteMetadata).path, "No space left on device"))
    md = sim.last(PublishCapture).metadata
    assert md.metadata_path is None and md.failures[-1].kind == "write_failed" and not md.complete
    assert len(md.images) == 1 and sim.state.run is None and sim.state.stats.failures == 1


def test_unconfirmed_metadata_write_times_out():
    sim = started(grid={"size": 1}, settle=0)
    sim.run_grid()
    sim.ok(sim.last(SendMove))
    sim.ok(sim.last(SendRelease), {"reason": "requested", "returned": True})
    sim.feed(Tick(), dt=60)
    assert sim.state.run is None and sim.last(PublishCapture).metadata.metadata_path is None


# ------------------------------------------------------------------ the bridge and the print
def test_bridge_offline_mid_grid_sends_the_release_and_finishes_without_waiting():
    sim = at_capture()
    sim.feed(BridgePresence(False))
    assert len(sim.of(SendRelease)) == 1
    sim.written(sim.last(WriteMetadata))
    md = sim.last(PublishCapture).metadata
    assert md.failures[0].kind == "bridge_offline" and md.release is None and sim.state.run is None


def test_bridge_offline_during_the_release():
    sim = started(grid={"size": 1}, settle=0, return_to_origin=False)
    sim.run_grid()
    sim.feed(BridgePresence(False))
    sim.written(sim.last(WriteMetadata))
    md = sim.last(PublishCapture).metadata
    assert md.failures[0].kind == "bridge_offline" and len(sim.of(SendRelease)) == 1


def test_hold_status_idle_mid_grid_means_the_bridge_released_nothing_is_sent():
    sim = at_capture()
    sim.feed(hold_status(phase="idle", ts=501))
    assert not sim.of(SendRelease)
    sim.written(sim.last(WriteMetadata))
    md = sim.last(PublishCapture).metadata
    assert md.failures[0].kind == "hold_lost" and md.release.by == "unknown"


def test_a_stale_hold_status_from_before_the_held_event_is_ignored():
    sim = at_capture()
    sim.feed(hold_status(phase="idle", ts=499))
    sim.feed(hold_status(phase="held", hold_id=1, ts=500.5))
    assert sim.state.run.phase == "capturing"


def test_released_event_for_our_hold_mid_grid_records_the_bridges_reason():
    sim = at_capture()
    sim.feed(HoldReleased(7, "max_hold", True))
    assert sim.state.run.phase == "capturing", "another hold's event"
    sim.feed(HoldReleased(1, "max_hold", True))
    sim.written(sim.last(WriteMetadata))
    md = sim.last(PublishCapture).metadata
    assert not sim.of(SendRelease)
    assert md.failures[0].kind == "hold_lost" and "max_hold" in md.failures[0].message
    assert md.release.by == "bridge" and md.release.reason == "max_hold"


def test_released_event_or_idle_status_while_releasing_completes_the_release():
    for message in (HoldReleased(1, "requested", True), hold_status(phase="idle", ts=600)):
        sim = started(grid={"size": 1}, settle=0, return_to_origin=False)
        sim.run_grid()
        sim.feed(message, dt=0.2)
        sim.written(sim.last(WriteMetadata))
        md = sim.last(PublishCapture).metadata
        assert md.release.by == "coordinator" and not md.failures and md.timings.release == pytest.approx(0.2)
        assert md.complete, "released on our request; the bridge's release always returns the head"


@pytest.mark.parametrize("stop", [PrintEnded("cancelled"), ActivitySeen(False)])
def test_print_stopping_mid_grid_ends_cleanly(stop):
    sim = Sim().ready()
    sim.feed(ActivitySeen(True))
    sim.feed(held())
    sim.feed(stop)
    md = released(sim, {"held": False})
    assert md.failures[0].kind == "print_stopped" and not sim.of(SendCapture)


def test_sequence_timeout_stops_at_the_current_point():
    sim = started(timeouts={"sequence": 20, "move": 30})
    sim.ok(sim.last(SendMove), dt=5)
    sim.feed(Tick(), dt=0.5)
    sim.capture(sim.last(SendCapture))
    sim.written(sim.last(WriteImage))
    sim.feed(Tick(), dt=15)
    md = released(sim)
    assert md.failures[0].kind == "sequence_timeout" and md.failures[0].point == 1 and len(md.images) == 1


def test_abort_command():
    sim = at_capture()
    sim.feed(Abort("abort command x"))
    md = released(sim)
    assert md.failures[0].kind == "aborted" and "abort command x" in md.failures[0].message


def test_abort_when_idle_or_releasing_does_nothing():
    sim = Sim().ready()
    assert sim.feed(Abort("x")) == []
    sim.feed(held())
    sim.feed(Abort("x"))
    sim.feed(Abort("again"))
    assert len(sim.of(SendRelease)) == 1


# ------------------------------------------------------------------ the release itself
def test_release_refused_is_recorded_and_not_retried():
    sim = started(grid={"size": 1}, settle=0, return_to_origin=False)
    sim.run_grid()
    sim.refuse(sim.last(SendRelease), "failed")
    sim.written(sim.last(WriteMetadata))
    md = sim.last(PublishCapture).metadata
    assert md.failures[0].kind == "release_failed" and len(sim.of(SendRelease)) == 1


def test_release_timeout_is_recorded_and_not_retried():
    sim = started(grid={"size": 1}, settle=0, return_to_origin=False)
    sim.run_grid()
    sim.feed(Tick(), dt=60)
    sim.written(sim.last(WriteMetadata))
    md = sim.last(PublishCapture).metadata
    assert md.failures[0].kind == "release_timeout" and "watchdog" in md.failures[0].message
    assert len(sim.of(SendRelease)) == 1 and md.timings.release == pytest.approx(60)


def test_release_answer_saying_not_returned_makes_the_layer_incomplete():
    sim = started(grid={"size": 1}, settle=0, return_to_origin=False)
    sim.run_grid()
    md = released(sim, {"reason": "requested", "returned": False})
    assert not md.failures and md.release.returned is False


# ------------------------------------------------------------------ refused before moving
def test_hold_without_a_profile_is_released_as_refused():
    sim = Sim()
    sim.feed(BridgePresence(True))
    sim.feed(held())
    md = released(sim)
    assert md.failures[0].kind == "plan_refused" and "no printer profile" in md.failures[0].message


def test_hold_with_a_plan_out_of_bounds_is_released_as_refused():
    sim = Sim(printer_config(grid={"points": [{"x": 300, "y": 10}]})).ready()
    sim.feed(held())
    md = released(sim)
    assert md.failures[0].kind == "plan_refused" and "grid point 0 (300, 10)" in md.failures[0].message


def test_hold_without_an_origin():
    sim = Sim().ready()
    sim.feed(held(origin=None))
    md = released(sim)
    assert md.failures[0].kind == "no_origin" and not sim.of(SendMove)


def test_capture_height_above_max_z_is_out_of_bounds_not_clipped():
    sim = Sim(printer_config(max_z=50)).ready()
    sim.feed(held(z=46.0, origin=XYZ(1, 1, 46.0)))
    md = released(sim)
    f = md.failures[0]
    assert f.kind == "out_of_bounds" and "Z 51" in f.message and "allowed Z 50" in f.message and not sim.of(SendMove)


def test_answers_for_another_printer_or_a_finished_step_do_nothing():
    sim = at_capture()
    before = sim.state
    sim.feed(Answer("s1.999", True, {}))
    sim.feed(ImageArrived("s1.999", b"x", "00"))
    assert sim.state == before
