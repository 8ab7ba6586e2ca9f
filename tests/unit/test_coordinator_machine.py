"""Coordinator pure core: arming, the capture sequence, and the state it publishes.

Failures and timeouts are in ``test_coordinator_faults.py``; the properties that hold for
any sequence of inputs in ``test_coordinator_property.py``.
"""

from __future__ import annotations

import pytest
from coordinator_support import COORD, HOLDER, PROFILE, Sim, held, hold_status, printer_config

from printmesh_coordinator.machine import ARMED_GUARD, next_deadline
from printmesh_coordinator.messages import (
    XYZ,
    ActivitySeen,
    Answer,
    BridgePresence,
    CoordinatorPresence,
    HoldStatusSeen,
    JobSeen,
    Note,
    PrintEnded,
    ProfileSeen,
    PublishCapture,
    PublishState,
    SendCapture,
    SendHold,
    SendMove,
    SendRelease,
    Tick,
    WriteImage,
    WriteMetadata,
    WriteSummary,
    Written,
)
from printmesh_coordinator.state import job_name
from printmesh_core.models.printer import BuildVolume, CustomBox, HoldPlan, PrinterJob, PrinterProfile


# ------------------------------------------------------------------ arming
def test_arms_only_once_the_bridge_is_online_and_the_profile_fits():
    sim = Sim()
    assert not sim.of(SendHold)
    sim.feed(ProfileSeen(PROFILE))
    assert not sim.of(SendHold), "bridge state unknown: no arming"
    sim.feed(BridgePresence(True))
    arm = sim.last(SendHold)
    assert arm.plan == HoldPlan(every=5) and arm.holder == HOLDER
    assert sim.state.arming.request_id == arm.request_id


def test_no_arming_without_a_profile_and_state_says_why():
    sim = Sim()
    sim.feed(BridgePresence(True))
    assert not sim.of(SendHold)
    state = sim.last(PublishState).state
    assert state.phase == "waiting" and state.message == "waiting for the printer profile"


def test_armed_plan_is_left_alone_and_the_state_says_armed():
    sim = Sim().ready()
    arm = sim.last(SendHold)
    sim.ok(arm, {"armed": {"every": 5}})
    sim.feed(hold_status(ts=1))
    sim.feed(Tick(), dt=60)
    assert len(sim.of(SendHold)) == 1
    state = sim.last(PublishState).state
    assert state.phase == "armed" and state.armed and state.points == 9 and state.plan.every == 5


def test_rearms_when_the_bridge_drops_the_plan_after_a_print():
    sim = Sim().ready()
    sim.ok(sim.last(SendHold), {})
    sim.feed(hold_status(ts=1))
    sim.feed(hold_status(ts=2, armed=None), dt=ARMED_GUARD + 0.1)
    assert len(sim.of(SendHold)) == 2


def test_rearm_waits_for_the_guard_after_an_answer_then_the_tick_sends_it():
    sim = Sim().ready()
    sim.ok(sim.last(SendHold), {})
    sim.feed(hold_status(ts=2, armed=None))
    assert len(sim.of(SendHold)) == 1, "the status may lag the answer: wait a moment"
    assert next_deadline(sim.state) == pytest.approx(sim.now + ARMED_GUARD)
    sim.feed(Tick(), dt=ARMED_GUARD)
    assert len(sim.of(SendHold)) == 2


def test_rearms_a_different_plan_or_a_missing_holder():
    sim = Sim().ready()
    sim.ok(sim.last(SendHold), {})
    sim.feed(hold_status(ts=1, armed=HoldPlan(every=3)), dt=2)
    assert len(sim.of(SendHold)) == 2
    sim.ok(sim.last(SendHold), {})
    sim.feed(hold_status(ts=2, holder=None), dt=2)
    assert len(sim.of(SendHold)) == 3


def test_another_online_coordinator_holding_the_plan_is_accepted_an_offline_one_is_not():
    sim = Sim().ready()
    sim.ok(sim.last(SendHold), {})
    status = hold_status(ts=1, holder="other/coordinator", armed=HoldPlan(every=7))
    sim.feed(HoldStatusSeen(status.status, holder_online=True), dt=2)  # the shell heard it online
    assert len(sim.of(SendHold)) == 1, "no tug of war with a fleet member, even over the plan"
    assert sim.last(PublishState).state.phase == "armed"
    sim.feed(CoordinatorPresence("other/coordinator", False), dt=2)
    assert len(sim.of(SendHold)) == 2


def test_a_peer_that_holds_none_of_our_printers_changes_nothing():
    """O(1) per status: a peer other than the plan's holder leaves the state as it is (no copy)."""
    sim = Sim().ready()
    sim.ok(sim.last(SendHold), {})
    before = sim.state
    sim.feed(CoordinatorPresence("stranger/coordinator", True))
    assert sim.state.holder_online is False
    assert sim.state.hold_status == before.hold_status and sim.state.arming == before.arming


def test_refused_arming_is_retried_after_the_arm_timeout():
    sim = Sim().ready()
    sim.feed(hold_status(ts=1, armed=None), dt=2)
    assert len(sim.of(SendHold)) == 2
    sim.refuse(sim.last(SendHold), "layer_passed")
    assert sim.last(Note).text.startswith("octo: arming refused: layer_passed")
    assert sim.last(PublishState).state.message.startswith("arming failed: layer_passed")
    sim.feed(Tick(), dt=9.9)
    assert len(sim.of(SendHold)) == 2
    sim.feed(Tick(), dt=0.1)
    assert len(sim.of(SendHold)) == 3


def test_unanswered_arming_times_out_and_is_sent_again():
    sim = Sim()
    sim.feed(BridgePresence(True))
    sim.feed(ProfileSeen(PROFILE))
    first = sim.last(SendHold)
    assert next_deadline(sim.state) == pytest.approx(sim.now + 10)
    sim.feed(Tick(), dt=10)
    assert len(sim.of(SendHold)) == 2 and sim.last(SendHold).request_id != first.request_id
    sim.ok(first)  # the late answer of the first is ignored
    assert sim.state.arming.request_id == sim.last(SendHold).request_id


def test_bridge_offline_forgets_the_pending_arming_and_arms_again_when_back():
    sim = Sim()
    sim.feed(BridgePresence(True))
    sim.feed(ProfileSeen(PROFILE))
    assert sim.state.arming.request_id is not None
    sim.feed(BridgePresence(False))
    assert sim.state.arming.request_id is None
    assert sim.last(PublishState).state.message == "the bridge is offline"
    sim.feed(BridgePresence(True))
    assert len(sim.of(SendHold)) == 2


def test_a_restarted_bridge_without_our_plan_is_armed_again():
    sim = Sim().ready()
    sim.feed(BridgePresence(False), dt=5)
    sim.feed(BridgePresence(True), dt=5)
    assert len(sim.of(SendHold)) == 1, "its retained status still shows our plan"
    sim.feed(hold_status(ts=9, armed=None, holder=None))
    assert len(sim.of(SendHold)) == 2


def test_a_plan_out_of_bounds_is_refused_never_armed_and_named():
    sim = Sim(printer_config(grid={"size": 3, "spacing": 100, "center": {"x": 100, "y": 100}}))
    sim.feed(BridgePresence(True))
    sim.feed(ProfileSeen(PROFILE))
    assert not sim.of(SendHold)
    note = sim.last(Note)
    assert note.level == "error" and note.text.startswith("printer octo: plan refused: grid point 0 (0, 0)")
    assert note.text.endswith("(and 7 more)")
    state = sim.last(PublishState).state
    assert state.phase == "refused" and state.message == note.text and not state.armed


def test_refusal_names_the_first_offending_point_exactly():
    sim = Sim(printer_config(grid={"points": [{"x": 100, "y": 100}, {"x": 199, "y": 100}, {"x": 0, "y": 0}]}))
    sim.feed(ProfileSeen(PROFILE))
    assert sim.last(Note).text == (
        "printer octo: plan refused: grid point 1 (199, 100) is out of bounds: X 199 is outside 5..195 "
        "(bed minus a 5 mm margin: X 5..195, Y 5..195, Z up to 200) (and 1 more)"
    )


def test_a_new_profile_that_fits_lifts_the_refusal_and_arms():
    sim = Sim(printer_config(grid={"size": 3, "spacing": 100, "center": {"x": 100, "y": 100}}))
    sim.feed(BridgePresence(True))
    sim.feed(ProfileSeen(PROFILE))
    assert sim.last(PublishState).state.phase == "refused"
    box = CustomBox(x_min=-10, x_max=250, y_min=-10, y_max=250, z_min=0, z_max=200)
    sim.feed(
        ProfileSeen(PrinterProfile(name="big", volume=BuildVolume(width=260, depth=260, height=200, custom_box=box)))
    )
    assert sim.of(SendHold)


# ------------------------------------------------------------------ the sequence
def test_a_hold_runs_the_grid_returns_releases_and_writes_the_metadata():
    sim = Sim().ready()
    sim.feed(held())
    sim.run_grid()
    moves = sim.of(SendMove)
    assert [(m.x, m.y) for m in moves] == [(80, 80), (100, 80), (120, 80), (120, 100), (100, 100), (80, 100),
                                           (80, 120), (100, 120), (120, 120), (50, 60)]  # fmt: skip
    assert all(m.z == 7.0 for m in moves[:-1]) and moves[-1].z is None, "the return keeps the safe height"
    labels = [c.label for c in sim.of(SendCapture)]
    assert labels == [f"L0010 P{i:02d}" for i in range(9)]
    assert not sim.of(SendRelease), "release after the return"
    sim.finish()
    assert len(sim.of(SendRelease)) == 1
    md = sim.last(PublishCapture).metadata
    assert md.complete and not md.failures and len(md.images) == 9
    assert [i.index for i in md.images] == list(range(9))
    assert md.images[3].position.x == 120 and md.images[3].position.y == 100
    assert md.layer == 10 and md.z_height == 2.0 and md.gcode_file == "folder/cube.gcode"
    assert md.print_start_time == 400.0 and md.coordinator == COORD and md.hold_id == 1
    assert md.settings.grid_size == 3 and md.settings.grid_spacing == 20 and md.settings.grid_center.x == 100
    assert md.release is not None and md.release.returned and md.release.by == "coordinator"
    t = md.timings
    assert t.waiting_for_moves == pytest.approx(2.0) and t.settle == pytest.approx(4.5)
    assert t.capture == pytest.approx(0.9) and t.release == pytest.approx(0.3)
    assert t.hold_duration == pytest.approx(2.0 + 4.5 + 0.9 + 0.3) and t.overhead == pytest.approx(0, abs=1e-6)
    job = job_name("folder/cube.gcode", 400.0)
    assert md.metadata_path == f"octo/{job}/layer_0010_metadata_19700101_001640.json"
    assert md.images[0].path == f"octo/{job}/layer_0010_pos_00_19700101_001640.jpg"
    assert sim.state.run is None and sim.state.stats.images == 9 and sim.state.stats.last_layer == 10


def test_metadata_is_published_only_after_its_file_is_written():
    sim = Sim().ready()
    sim.feed(held())
    sim.run_grid()
    sim.ok(sim.pending_command())
    sim.ok(sim.pending_command(), {"reason": "requested", "returned": True})
    assert sim.of(WriteMetadata) and not sim.of(PublishCapture)
    sim.written(sim.last(WriteMetadata))
    assert sim.of(PublishCapture)


def test_image_before_answer_or_answer_before_image_both_work():
    for image_first in (True, False):
        sim = Sim(printer_config(settle=0)).ready()
        sim.feed(held())
        sim.ok(sim.last(SendMove))
        sim.capture(sim.last(SendCapture), image_first=image_first)
        assert sim.of(WriteImage), image_first


def test_without_settle_the_capture_follows_the_move_at_once():
    sim = Sim(printer_config(settle=0)).ready()
    sim.feed(held())
    cmds = sim.ok(sim.last(SendMove))
    assert any(isinstance(c, SendCapture) for c in cmds)


def test_settle_waits_exactly_its_delay():
    sim = Sim().ready()
    sim.feed(held())
    sim.ok(sim.last(SendMove), dt=0.2)
    assert sim.state.run.phase == "settling" and next_deadline(sim.state) == pytest.approx(sim.now + 0.5)
    sim.feed(Tick(), dt=0.49)
    assert not sim.of(SendCapture)
    sim.feed(Tick(), dt=0.01)
    assert sim.of(SendCapture)


def test_every_point_is_captured_by_every_camera_with_the_camera_in_the_name():
    cams = [{"node": "cam", "camera": "bed"}, {"node": "cam2", "camera": "bed", "name": "side"}]
    sim = Sim(printer_config(cameras=cams, grid={"size": 1})).ready()
    sim.feed(held())
    sim.run_grid()
    caps = sim.of(SendCapture)
    assert [(c.node, c.camera, c.label) for c in caps] == [
        ("cam", "bed", "L0010 P00 bed"), ("cam2", "bed", "L0010 P00 side")]  # fmt: skip
    assert len(sim.of(SendMove)) == 2, "one move to the point for both cameras, then the return"
    paths = [w.path for w in sim.of(WriteImage)]
    assert paths[0].endswith("layer_0010_pos_00_bed_19700101_001640.jpg") and "_side_" in paths[1]
    sim.finish()
    md = sim.last(PublishCapture).metadata
    assert [i.camera for i in md.images] == ["bed", "side"] and md.complete


def test_grid_centre_defaults_to_the_bed_centre():
    sim = Sim(printer_config(grid={"size": 1})).ready()
    sim.feed(held())
    assert (sim.last(SendMove).x, sim.last(SendMove).y) == (100, 100)


def test_without_return_to_origin_the_release_follows_the_last_image():
    sim = Sim(printer_config(return_to_origin=False, grid={"size": 1})).ready()
    sim.feed(held())
    sim.run_grid()
    assert len(sim.of(SendMove)) == 1 and sim.of(SendRelease)


def test_capture_height_is_the_layer_or_the_held_head_whichever_is_higher_plus_clearance():
    sim = Sim().ready()
    sim.feed(held(z=2.0))
    assert sim.last(SendMove).z == 7.0
    hop = Sim().ready()
    hop.feed(held(z=2.0, origin=XYZ(10, 10, 2.6)))  # a z-hop at the hold
    assert hop.last(SendMove).z == 7.6


def test_feedrate_and_camera_options_are_passed_on():
    cams = [{"node": "cam", "camera": "bed", "width": 640, "quality": 70}]
    sim = Sim(printer_config(feedrate=3000, cameras=cams, settle=0)).ready()
    sim.feed(held())
    assert sim.last(SendMove).feedrate == 3000
    sim.ok(sim.last(SendMove))
    cap = sim.last(SendCapture)
    assert (cap.width, cap.height, cap.quality) == (640, None, 70)


def test_state_is_published_on_each_step_and_not_when_nothing_changed():
    sim = Sim().ready()
    before = len(sim.of(PublishState))
    sim.feed(Tick(), dt=1)
    assert len(sim.of(PublishState)) == before
    sim.feed(held())
    state = sim.last(PublishState).state
    assert state.phase == "moving" and state.layer == 10 and state.point == 0 and state.job.startswith("cube_")


def test_unmatched_answers_and_images_change_nothing():
    sim = Sim().ready()
    sim.feed(held())
    state = sim.state
    sim.feed(Answer("nobody", True, {}))
    assert sim.state == state


# ------------------------------------------------------------------ holds and jobs
def test_the_same_held_event_twice_is_handled_once():
    sim = Sim().ready()
    sim.feed(held())
    sim.feed(held())
    assert len(sim.of(SendMove)) == 1
    sim.run_grid()
    sim.finish()
    sim.feed(held())
    assert len(sim.of(SendMove)) == 10 and "handled already" in sim.last(Note).text


def test_a_new_hold_during_a_run_ends_the_old_one_as_lost_and_runs_the_new_one():
    sim = Sim().ready()
    sim.feed(held(hold_id=1))
    sim.feed(held(hold_id=2, layer=15, ts=600))
    assert not sim.of(SendRelease), "the bridge already moved on: nothing to release"
    sim.written(sim.last(WriteMetadata))
    first = sim.last(PublishCapture).metadata
    assert first.hold_id == 1 and first.failures[0].kind == "hold_lost" and "hold 2" in first.failures[0].message
    assert sim.state.run is not None and sim.state.run.hold_id == 2 and sim.state.run.layer == 15


def test_a_hold_without_a_layer_is_released_at_once():
    sim = Sim().ready()
    sim.feed(held(layer=None))
    assert sim.of(SendRelease) and not sim.of(SendMove) and sim.state.run is None


def test_print_end_when_idle_writes_the_summary_once_with_the_best_outcome():
    sim = Sim().ready()
    sim.feed(JobSeen(PrinterJob(file_path="a/b.gcode", started_at=400.0)))
    sim.feed(ActivitySeen(True))
    sim.feed(ActivitySeen(False))
    sim.feed(PrintEnded("done"))
    sim.feed(ActivitySeen(False))
    summaries = sim.of(WriteSummary)
    assert [(s.job, s.outcome) for s in summaries] == [(job_name("a/b.gcode", 400.0), "unknown"),
                                                       (job_name("a/b.gcode", 400.0), "done")]  # fmt: skip
    assert summaries[0].gcode_file == "a/b.gcode" and summaries[0].print_start_time == 400.0


def test_print_end_during_a_hold_writes_the_summary_after_its_metadata():
    sim = Sim().ready()
    sim.feed(ActivitySeen(True))
    sim.feed(held())
    sim.feed(PrintEnded("cancelled"))
    assert not sim.of(WriteSummary)
    sim.ok(sim.last(SendRelease), {"held": False})
    sim.written(sim.last(WriteMetadata))
    summary = sim.last(WriteSummary)
    assert summary.outcome == "cancelled" and summary.job == job_name("folder/cube.gcode", 400.0)


def test_a_new_job_resets_the_counters():
    sim = Sim(printer_config(grid={"size": 1})).ready()
    sim.feed(held())
    sim.run_grid()
    sim.finish()
    assert sim.state.stats.images == 1
    sim.feed(JobSeen(PrinterJob(file_path="next.gcode", started_at=900.0)))
    assert sim.state.stats.images == 0 and sim.last(PublishState).state.job == job_name("next.gcode", 900.0)


def test_overhead_is_what_storing_and_the_coordinators_own_steps_add():
    sim = Sim(printer_config(grid={"size": 1}, settle=0, return_to_origin=False)).ready()
    sim.feed(held())
    sim.ok(sim.last(SendMove), dt=0.5)
    sim.now += 0.2
    sim.capture(sim.last(SendCapture))
    sim.feed(Written(sim.last(WriteImage).path), dt=0.05)
    sim.ok(sim.last(SendRelease), {"reason": "requested", "returned": True}, dt=0.3)
    sim.written(sim.last(WriteMetadata))
    t = sim.last(PublishCapture).metadata.timings
    assert (t.waiting_for_moves, t.capture, t.store, t.release) == pytest.approx((0.5, 0.2, 0.05, 0.3))
    assert t.hold_duration == pytest.approx(1.05) and t.overhead == pytest.approx(0.05)


def test_an_origin_inside_the_margin_is_not_a_return_target_the_release_brings_the_head_back():
    """At layer 1 right after G28 the head is at X0: the bridge would refuse a move there."""
    sim = Sim(printer_config(grid={"size": 1})).ready()
    sim.feed(held(origin=XYZ(0.0, 0.0, 0.2)))
    sim.run_grid()
    assert len(sim.of(SendMove)) == 1, "the grid point only, no move to X0 Y0"
    assert sim.of(SendRelease), "released straight after the last image"
