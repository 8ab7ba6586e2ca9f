"""The job summary's rules: every planned layer with a status, orphans, one final summary."""

from __future__ import annotations

from pathlib import Path

from printmesh_coordinator import summary as rules
from printmesh_coordinator.sequence import hold_began
from printmesh_coordinator.store import Store
from printmesh_core.models.coordinator import (
    XY,
    CapturedImage,
    CaptureFailure,
    GridSettings,
    HoldTimings,
    JobSummary,
    LayerCapture,
)
from printmesh_core.models.printer import HoldPlan

JOB = "box_20260101-000000"
DIR = f"p1/{JOB}"


def md(layer: int, images: int = 2, fail: str | None = None, missed: str | None = None, hold: int = 1) -> LayerCapture:
    failures = [CaptureFailure(kind="write_failed", message=fail, at=1.0)] if fail else []
    if missed:
        failures = [CaptureFailure(kind="layer_missed", message="passed", at=1.0, code=missed)]
    return LayerCapture(
        ts=10.0, layer=layer, z_height=layer * 0.2, timestamp=float(layer), gcode_file="box.gcode",
        print_start_time=1.0, printer="p1", job=JOB, hold_id=0 if missed else hold, coordinator="c",
        complete=not failures, failures=failures, missed=missed,
        images=[CapturedImage(path=f"{DIR}/layer_{layer:04d}_pos_{i:02d}.jpg", position=XY(x=0, y=0), z=1.0,
                              index=i, camera="bed", camera_node="cams", capture_id=f"c{i}", sha256="0" * 64,
                              size=1, timestamp=1.0) for i in range(0 if missed else images)],
        settings=GridSettings(grid_spacing=30, grid_center=XY(x=0, y=0), grid_size=1, points=2,
                              z_clearance=5, settle=0, cameras=["bed"], return_to_origin=True),
        timings=HoldTimings(hold_duration=1, waiting_for_moves=0, settle=0, capture=0, store=0, release=0, overhead=1),
        release=None, metadata_path=f"{DIR}/layer_{layer:04d}_metadata_{layer}.json",
    )  # fmt: skip


def test_planned_layers_follow_the_plan_up_to_the_total() -> None:
    assert rules.planned_layers(HoldPlan(every=5), 22) == {5, 10, 15, 20}
    assert rules.planned_layers(HoldPlan(every=5, first=True, last=True, layers=[3, 99]), 22) == {
        1,
        3,
        5,
        10,
        15,
        20,
        22,
    }
    assert rules.planned_layers(HoldPlan(every=5), None) == set()


def test_every_planned_layer_has_a_status() -> None:
    records = [md(5), md(10, fail="No space left on device"), md(15, missed="broker_unreachable")]
    out = {s.layer: s for s in rules.layers(records, {5, 10, 15, 20})}
    assert sorted(out) == [5, 10, 15, 20]
    assert out[5].status == "complete" and out[5].images == 2 and out[5].failures == []
    assert out[10].status == "incomplete" and out[10].failures[0].message == "No space left on device"
    assert out[15].status == "missed" and out[15].reason == "broker_unreachable"
    assert out[20].status == "missed" and out[20].reason == "not_held" and out[20].images == 0


def test_a_retried_layer_is_complete_if_any_hold_completed_and_held_beats_missed() -> None:
    assert rules.layers([md(5, fail="x"), md(5, hold=2)], set())[0].status == "complete"
    assert rules.layers([md(5, missed="holder_unreachable"), md(5, fail="x", hold=2)], set())[0].status == "incomplete"


def test_orphans_are_images_no_metadata_lists() -> None:
    files = ["layer_0005_pos_00.jpg", "layer_0005_pos_01.jpg", "layer_0010_pos_00.jpg", "notes.txt", "x.json"]
    assert rules.orphans(files, [md(5)], DIR) == [f"{DIR}/layer_0010_pos_00.jpg"]


def test_metadata_published_but_not_written_still_counts() -> None:
    disk = [md(5)]
    lost = md(10, images=0, fail="metadata not written: No space left on device")
    assert [m.layer for m in rules.merge(disk, [md(5), lost])] == [5, 10]


def summary(outcome: str, ended: float = 100.0, layers: list[int] | None = None) -> JobSummary:
    return JobSummary(
        printer="p1", job=JOB, gcode_file=None, print_start_time=None, ended_at=ended, outcome=outcome,
        layers_captured=layers or [], layers_held=layers or [], images=0, failures=[], total_hold_time=0,
        coordinators=[], ts=ended,  # written when it ended: a duplicate differs in ts too
    )  # fmt: skip


def test_one_final_summary_unknown_never_overrides_a_known_outcome() -> None:
    first = rules.better(summary("done"), None)
    assert first is not None and first.outcome == "done"
    assert rules.better(summary("unknown", ended=101.4), first) is None  # the duplicate is not published
    late = rules.better(summary("unknown", ended=130, layers=[15]), first)  # a late missed layer
    assert late is not None and late.outcome == "done" and late.layers_held == [15]
    assert rules.better(summary("done", ended=200), first) is None


def test_store_summary_lists_layers_orphans_and_unwritten_metadata(tmp_path: Path) -> None:
    folder = tmp_path / DIR
    folder.mkdir(parents=True)
    five = md(5)
    (folder / "layer_0005_metadata_5.json").write_text(five.model_dump_json())
    for name in ["layer_0005_pos_00.jpg", "layer_0005_pos_01.jpg", "layer_0015_pos_00.jpg"]:
        (folder / name).write_bytes(b"x")
    lost = md(10, images=0, fail="metadata not written: No space left on device")
    s = Store(tmp_path).summary("p1", JOB, "done", None, None, 50.0, [five, lost], HoldPlan(every=5), 22)
    assert s is not None
    assert [(x.layer, x.status, x.reason) for x in s.layers] == [
        (5, "complete", None), (10, "incomplete", None), (15, "missed", "not_held"), (20, "missed", "not_held"),
    ]  # fmt: skip
    assert s.orphans == [f"{DIR}/layer_0015_pos_00.jpg"]
    assert [f.layer for f in s.failures] == [10]
    # without the layer count, planned layers reach the last layer that has metadata
    s = Store(tmp_path).summary("p1", JOB, "done", None, None, 50.0, [five, lost], HoldPlan(every=5))
    assert s is not None and [x.layer for x in s.layers] == [5, 10]


def test_hold_time_starts_when_the_bridge_held() -> None:
    assert hold_began(100.0, 385.0, 600.0) == 100.0  # waited 285 s behind a flood: counted
    assert hold_began(390.0, 385.0, 600.0) == 385.0  # a clock ahead of ours: not believed
    assert hold_began(1.0, 1000.0, 600.0) == 1000.0  # too far back: not believed


def test_a_finished_print_is_planned_to_its_last_layer_a_stopped_one_to_its_last_record() -> None:
    from printmesh_coordinator.store import last_planned

    assert last_planned("done", 30, []) == 30  # layers after the last hold that were never held count
    assert last_planned("cancelled", 30, []) == 0  # a cancelled print never reached them
    assert last_planned("done", None, []) == 0
