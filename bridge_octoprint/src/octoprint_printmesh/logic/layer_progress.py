"""Layer bookkeeping: current layer and its Z, and how long each layer took.

A layer's duration runs from its first layer event to the next one, minus the time the
print was suspended inside it (a pause, or a printmesh hold for captures): a layer
graph that shows every captured layer as a spike hides the layers that were really
slow. Repeated and out-of-order layer events (a known complaint about layer plugins)
are ignored rather than producing zero or negative durations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import LayerProgress

MAX_DURATIONS = 1000  # kept in the payload; the average covers every layer


@dataclass(frozen=True)
class LayerTrack:
    current: int | None = None
    total: int | None = None
    z: float | None = None  # of the current layer, mm
    total_height: float | None = None
    started: float | None = None  # when the current layer began
    excluded: float = 0.0  # suspended seconds inside the current layer
    suspended_at: float | None = None
    durations: tuple[float, ...] = ()  # the last MAX_DURATIONS
    finished: int = 0  # layers with a duration
    seconds: float = 0.0  # sum of all durations


def start_print(total: int | None = None, total_height: float | None = None) -> LayerTrack:
    """A fresh track for a new print; totals come from the file scan, when there is one."""
    return LayerTrack(total=total, total_height=total_height)


def suspend(track: LayerTrack, now: float) -> LayerTrack:
    """The print stopped advancing (paused, held)."""
    return track if track.suspended_at is not None else replace(track, suspended_at=now)


def resume(track: LayerTrack, now: float) -> LayerTrack:
    if track.suspended_at is None:
        return track
    return replace(track, suspended_at=None, excluded=track.excluded + max(0.0, now - track.suspended_at))


def _close(track: LayerTrack, now: float) -> LayerTrack:
    """Record the current layer's duration, if it has a start."""
    track = resume(track, now)
    if track.started is None:
        return track
    duration = round(max(0.0, now - track.started - track.excluded), 3)
    return replace(
        track,
        durations=(*track.durations, duration)[-MAX_DURATIONS:],
        finished=track.finished + 1,
        seconds=track.seconds + duration,
        started=None,
        excluded=0.0,
    )


def layer_reached(track: LayerTrack, layer: int, z: float | None, now: float) -> LayerTrack:
    """Layer ``layer`` (from 1) at ``z`` started at ``now``; duplicates and older layers are ignored."""
    if track.current is not None and layer <= track.current:
        return track
    closed = _close(track, now)
    total = track.total if track.total is None or track.total >= layer else layer
    return replace(closed, current=layer, z=z, started=now, total=total)


def on_layer_event(track: LayerTrack, event: LayerEvent, now: float) -> LayerTrack:
    """The same for a ``LayerEvent`` from the layer follower; its totals fill in unknown ones."""
    if track.total is None and event.total_layers is not None:
        track = replace(track, total=event.total_layers)
    if track.total_height is None and event.total_height is not None:
        track = replace(track, total_height=event.total_height)
    return layer_reached(track, event.layer, event.z, now)


def finish(track: LayerTrack, now: float) -> LayerTrack:
    """The print ended (PrintDone): the last layer gets its duration."""
    return _close(track, now)


def layers_payload(track: LayerTrack, now: float) -> LayerProgress:
    return LayerProgress(
        ts=now,
        current=track.current,
        total=track.total,
        current_height=track.z,
        total_height=track.total_height,
        last_duration=track.durations[-1] if track.durations else None,
        average_duration=round(track.seconds / track.finished, 3) if track.finished else None,
        durations=list(track.durations),
    )
