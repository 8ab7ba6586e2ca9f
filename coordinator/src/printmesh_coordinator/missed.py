"""A planned layer the bridge could not hold: written into the job folder like any other layer.

The bridge holds only while its holder can reach it; a planned layer that passes while the
broker is away (or before the holder is seen online again after it) goes by unheld, and
the bridge says so with a ``missed`` event once the holder can hear it. The holder's
coordinator writes that layer's metadata file (``missed`` set to the reason, no images, one
``layer_missed`` failure, ``hold_id`` 0), so the job folder, the summary built from it and
the job page all list the layer as missed, with its reason: no layer is lost silently.
Other coordinators of the fleet ignore it, so it is written once.
"""

from __future__ import annotations

from dataclasses import replace

from printmesh_coordinator import report
from printmesh_coordinator.messages import Command, LayerMissedSeen, Note, PublishCapture, WriteMetadata, WriteSummary
from printmesh_coordinator.state import MachineState, job_name, stamp
from printmesh_core.models.coordinator import HoldTimings, LayerCapture

Step = tuple[MachineState, list[Command]]
REASONS = {
    "broker_unreachable": "the bridge had no connection to the broker",
    "holder_unreachable": "the bridge could not reach this coordinator yet (its status was not online again)",
}


def metadata(state: MachineState, message: LayerMissedSeen, job: str, path: str) -> LayerCapture:
    why = REASONS.get(message.reason, message.reason)
    text = f"layer {message.layer} passed without a hold: {why} ({message.reason})"
    zero = HoldTimings(hold_duration=0, waiting_for_moves=0, settle=0, capture=0, store=0, release=0, overhead=0)
    return LayerCapture(
        ts=round(message.at, 3),
        layer=message.layer,
        z_height=message.z,
        timestamp=round(message.at, 3),
        gcode_file=message.path,
        print_start_time=message.started_at,
        printer=state.setup.name,
        job=job,
        hold_id=0,
        coordinator=state.setup.coordinator,
        complete=False,
        images=[],
        settings=report.settings_of(state),
        failures=[report.failure("layer_missed", text, message.at, code=message.reason)],
        timings=zero,
        release=None,
        metadata_path=path,
        missed=message.reason,
    )


def record(state: MachineState, message: LayerMissedSeen) -> Step:
    """Ours (we are its holder): write and publish the layer's metadata; anyone else's: nothing."""
    if message.holder != state.setup.holder:
        return state, []
    if message.path is None and message.started_at is None and state.job is not None:
        job = state.job.name  # an older bridge without the print's identity: the job we know
    else:
        job = job_name(message.path, message.started_at)
    path = f"{state.setup.name}/{job}/layer_{message.layer:04d}_metadata_{stamp(message.at)}.json"
    md = metadata(state, message, job, path)
    text = f"{state.setup.name}: {md.failures[0].message}"
    cmds: list[Command] = [WriteMetadata(path, md), PublishCapture(md), Note("warning", text)]
    if state.stats.job == job:
        stats = state.stats
        state = replace(state, stats=replace(stats, failures=stats.failures + 1, message=md.failures[0].message))
    ended = state.ended
    if ended is not None and ended[0] == job and state.run is None:  # the summary was written before it came
        cmds.append(WriteSummary(job, ended[1], message.path, message.started_at))
    return state, cmds
