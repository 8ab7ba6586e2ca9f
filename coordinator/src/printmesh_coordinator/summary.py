"""The job summary, pure: every planned layer with its status, and the images no metadata lists.

A layer is ``complete`` (its metadata says so), ``incomplete`` (held, with its failures),
or ``missed`` (with its reason: the bridge's ``missed`` event gives ``broker_unreachable``
or ``holder_unreachable``; a planned layer with no metadata at all is ``not_held``).
Planned layers are those the plan holds up to the job's layer count, when it is known;
layers with metadata are always listed, planned or not.

One final summary per job: ``better`` decides whether a later summary may replace the one
already published. A known outcome (done, cancelled, failed) is never replaced by
``unknown``, and a summary equal to the published one (but for its time) is not published
again; a late ``missed`` event that adds a layer's record does republish, keeping the outcome.
"""

from __future__ import annotations

from collections.abc import Iterable

from printmesh_core.models.coordinator import JobSummary, LayerCapture, SummaryLayer
from printmesh_core.models.printer import HoldPlan

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def planned_layers(plan: HoldPlan | None, total: int | None) -> set[int]:
    """The layers ``plan`` holds in a print of ``total`` layers (from 1); empty if either is unknown."""
    if plan is None or not total or total < 1:
        return set()
    out = {layer for layer in plan.layers if layer <= total}
    if plan.every:
        out |= set(range(plan.every, total + 1, plan.every))
    if plan.first:
        out.add(1)
    if plan.last:
        out.add(total)
    return out


def layer_status(layer: int, records: list[LayerCapture]) -> SummaryLayer:
    """One layer from its metadata (several when a hold was retried): complete wins, then held."""
    done = next((md for md in records if md.complete), None)
    if done is not None:
        return SummaryLayer(layer=layer, status="complete", images=len(done.images))
    held = [md for md in records if md.missed is None]
    if held:
        failures = [f for md in held for f in md.failures]
        return SummaryLayer(
            layer=layer, status="incomplete", images=sum(len(md.images) for md in held), failures=failures
        )
    missed = records[-1]
    return SummaryLayer(layer=layer, status="missed", reason=missed.missed, failures=list(missed.failures))


def layers(records: Iterable[LayerCapture], planned: set[int]) -> list[SummaryLayer]:
    by_layer: dict[int, list[LayerCapture]] = {}
    for md in records:
        by_layer.setdefault(md.layer, []).append(md)
    out: list[SummaryLayer] = []
    for layer in sorted(planned | set(by_layer)):
        found = by_layer.get(layer)
        if found:
            out.append(layer_status(layer, found))
        else:
            out.append(SummaryLayer(layer=layer, status="missed", reason="not_held"))
    return out


def orphans(files: Iterable[str], records: Iterable[LayerCapture], job_dir: str) -> list[str]:
    """Image files (relative to captures_dir, like the metadata's paths) that no metadata lists."""
    listed = {img.path for md in records for img in md.images}
    return sorted(
        f"{job_dir}/{name}"
        for name in files
        if name.lower().endswith(IMAGE_SUFFIXES) and f"{job_dir}/{name}" not in listed
    )


def merge(on_disk: list[LayerCapture], in_memory: Iterable[LayerCapture]) -> list[LayerCapture]:
    """The folder's metadata plus what was published but could not be written (a full disk)."""
    seen = {(md.layer, md.hold_id, md.timestamp) for md in on_disk}
    extra = [md for md in in_memory if (md.layer, md.hold_id, md.timestamp) not in seen]
    return [*on_disk, *extra]


def better(new: JobSummary, old: JobSummary | None) -> JobSummary | None:
    """What to publish instead of ``old`` (None: publish nothing, it would say nothing new)."""
    if old is None:
        return new
    if new.outcome == "unknown" and old.outcome != "unknown":
        new = new.model_copy(update={"outcome": old.outcome})
    if new.model_copy(update={"ended_at": old.ended_at, "ts": old.ts}) == old:  # the same but for when
        return None
    return new
