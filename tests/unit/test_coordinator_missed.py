"""A planned layer the bridge could not hold (broker away) lands in the job folder with its reason."""

from __future__ import annotations

import json

from coordinator_support import HOLDER, Sim

from printmesh_coordinator.link import parse_event
from printmesh_coordinator.messages import (
    JobSeen,
    LayerMissedSeen,
    Note,
    PrintEnded,
    PublishCapture,
    WriteMetadata,
    WriteSummary,
)
from printmesh_coordinator.state import job_name
from printmesh_core.models.coordinator import LayerCapture
from printmesh_core.models.printer import PrinterJob


def missed(layer: int = 15, reason: str = "broker_unreachable", holder: str | None = HOLDER) -> LayerMissedSeen:
    return LayerMissedSeen(layer, 3.0, reason, 1_800_000_000.0, "folder/cube.gcode", 1_799_999_000.0, holder)


def test_the_bridge_missed_event_is_read_from_the_event_topic():
    body = {"event": "missed", "source": "printmesh", "ts": 5.0, "payload": {
        "layer": 15, "z": 3.0, "reason": "broker_unreachable", "at": 4.0, "path": "a.gcode", "started_at": 1.0,
        "holder": HOLDER, "later_field": 1}}  # fmt: skip
    assert parse_event(json.dumps(body).encode()) == LayerMissedSeen(
        15, 3.0, "broker_unreachable", 4.0, "a.gcode", 1.0, HOLDER
    )
    body["payload"] = {"layer": 0, "reason": "x", "at": 1.0}
    assert parse_event(json.dumps(body).encode()) is None, "an unreadable body is dropped"


def test_a_missed_layer_is_written_and_published_with_its_reason():
    sim = Sim().ready()
    cmds = sim.feed(missed())
    write = next(c for c in cmds if isinstance(c, WriteMetadata))
    md = write.metadata
    job = job_name("folder/cube.gcode", 1_799_999_000.0)
    assert write.path == f"octo/{job}/layer_0015_metadata_20270115_080000.json" == md.metadata_path
    assert md.missed == "broker_unreachable" and md.layer == 15 and md.job == job and not md.complete
    assert md.images == [] and md.hold_id == 0 and md.z_height == 3.0
    assert [(f.kind, f.code) for f in md.failures] == [("layer_missed", "broker_unreachable")]
    assert "passed without a hold" in md.failures[0].message
    assert PublishCapture(md) in cmds and any(isinstance(c, Note) for c in cmds)
    LayerCapture.model_validate_json(md.model_dump_json())  # the file reads back
    assert sim.state.run is None, "no hold is started for it"


def test_only_the_holder_records_it():
    sim = Sim().ready()
    assert sim.feed(missed(holder="other/coordinator")) == []
    assert sim.feed(missed(holder=None)) == []


def test_a_missed_layer_arriving_after_the_summary_writes_the_summary_again():
    sim = Sim().ready()
    sim.feed(missed(layer=5))
    assert not sim.of(WriteSummary)
    sim.feed(JobSeen(PrinterJob(file_name="cube.gcode", file_path="folder/cube.gcode", started_at=1_799_999_000.0)))
    sim.feed(PrintEnded("done"))
    assert len(sim.of(WriteSummary)) == 1
    sim.feed(missed(layer=10))
    assert len(sim.of(WriteSummary)) == 2 and sim.last(WriteSummary).outcome == "done"
