"""printer/layer batching: every layer sent, in order, at once after a quiet gap, never later than the gap."""

from __future__ import annotations

from octoprint_printmesh.logic.layer_batch import LayerBatch, due_flush, flush, offer
from printmesh_core.models.layers import LayerEvent


def layer(n: int) -> LayerEvent:
    return LayerEvent(layer=n, z=0.2 * n, file_pos=100 * n, source="markers")


def test_a_layer_after_a_quiet_gap_goes_out_at_once() -> None:
    batch, sent = offer(LayerBatch(0.25), layer(1), 10.0)
    assert [e.layer for e in sent] == [1] and batch.due is None
    batch, sent = offer(batch, layer(2), 10.3)  # a real print: layers seconds (here 0.3 s) apart
    assert [e.layer for e in sent] == [2] and batch.sent_at == 10.3


def test_fast_layers_wait_at_most_the_gap_and_go_out_together_in_order() -> None:
    batch, _ = offer(LayerBatch(0.25), layer(1), 10.0)
    for n, t in ((2, 10.02), (3, 10.05), (4, 10.2)):
        batch, sent = offer(batch, layer(n), t)
        assert sent == ()
    assert batch.due == 10.25
    batch, sent = due_flush(batch, 10.24)  # woken early: nothing yet
    assert sent == () and batch.due == 10.25
    batch, sent = due_flush(batch, 10.25)
    assert [e.layer for e in sent] == [2, 3, 4] and batch.due is None and batch.sent_at == 10.25
    batch, sent = offer(batch, layer(5), 10.3)  # within the gap of that send: waits again
    assert sent == () and batch.due == 10.5


def test_anything_else_sent_takes_the_waiting_layers_first() -> None:
    batch, _ = offer(LayerBatch(0.25), layer(1), 10.0)
    batch, _ = offer(batch, layer(2), 10.01)
    batch, sent = flush(batch, 10.02)  # an event, a hold, the telemetry tick
    assert [e.layer for e in sent] == [2] and batch.sent_at == 10.02
    assert flush(batch, 10.03) == (batch, ())  # nothing waiting: nothing sent, the clock not reset


def test_a_layer_offered_while_others_wait_queues_behind_them_even_past_the_gap() -> None:
    batch, _ = offer(LayerBatch(0.25), layer(1), 10.0)
    batch, _ = offer(batch, layer(2), 10.1)
    batch, sent = offer(batch, layer(3), 10.4)  # the worker was busy past the due time: order is kept
    assert sent == ()
    batch, sent = due_flush(batch, 10.4)
    assert [e.layer for e in sent] == [2, 3]


def test_gap_zero_sends_every_layer_at_once() -> None:
    batch = LayerBatch(0.0)
    for n in range(1, 5):
        batch, sent = offer(batch, layer(n), 10.0)
        assert [e.layer for e in sent] == [n]
    assert batch.due is None
