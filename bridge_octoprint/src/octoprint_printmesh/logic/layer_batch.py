"""``printer/layer`` sent in small batches when layers start faster than anyone can use them.

Why: a layer of a small part, a vase or a sped-up virtual printer can start every few tens of
milliseconds. Each message sent alone wakes paho's thread and the broker, and on a Pi (or a VM)
those wake-ups cost OctoPrint's comm threads, which share the CPU, more than the message itself
(bench/RESULTS.md, "printer/layer in batches"). A real print's layers are seconds apart, so the
first layer after a quiet ``gap`` goes out at once, as before; one that starts sooner waits, at
most ``gap``, and goes out with the others that waited. None is dropped or merged: every layer
is its own message with its own ``ts`` (taken when it started), in order. Anything else the
worker sends (an event, a hold starting, the telemetry) sends the waiting layers first.

Plain functions of (state, input, now) -> (state, layers to send now): the worker owns the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from printmesh_core.models.layers import LayerEvent

NEVER = float("-inf")


@dataclass(frozen=True)
class LayerBatch:
    gap: float  # s; 0 sends every layer at once
    waiting: tuple[LayerEvent, ...] = ()
    sent_at: float = NEVER  # monotonic time of the last send

    @property
    def due(self) -> float | None:
        """When the waiting layers must go out (monotonic), or None when none waits."""
        return self.sent_at + self.gap if self.waiting else None


def offer(batch: LayerBatch, event: LayerEvent, now: float) -> tuple[LayerBatch, tuple[LayerEvent, ...]]:
    """A layer started: send it now if the last send was ``gap`` ago, else keep it for the batch."""
    if not batch.waiting and now - batch.sent_at >= batch.gap:
        return replace(batch, sent_at=now), (event,)
    return replace(batch, waiting=(*batch.waiting, event)), ()


def flush(batch: LayerBatch, now: float) -> tuple[LayerBatch, tuple[LayerEvent, ...]]:
    """Something else is sent, or the batch is due: the waiting layers go out first."""
    if not batch.waiting:
        return batch, ()
    return replace(batch, waiting=(), sent_at=now), batch.waiting


def due_flush(batch: LayerBatch, now: float) -> tuple[LayerBatch, tuple[LayerEvent, ...]]:
    """The worker woke without an item: send the waiting layers if their time has come."""
    due = batch.due
    return flush(batch, now) if due is not None and now >= due else (batch, ())
