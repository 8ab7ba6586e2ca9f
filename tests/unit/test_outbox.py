from printmesh_core.outbox import Outbox, Outgoing


def msg(topic: str, n: int, retain: bool = False) -> Outgoing:
    return Outgoing(topic, str(n).encode(), 1, retain)


def test_bounded_drops_oldest_and_reports_per_topic():
    box = Outbox(limit=3)
    for i in range(5):
        box.put(msg("a/event", i))
    box.put(msg("a/state", 1, retain=True))
    box.put(msg("a/state", 2, retain=True))
    assert len(box) == 4 and box.dropped_total == 2
    pending, report = box.drain()
    assert [m.payload for m in pending] == [b"2", b"2", b"3", b"4"]
    assert report and "dropped 2 message(s)" in report and "a/event x2" in report
    assert len(box) == 0 and box.drain() == ([], None), "a report is given once"
    assert box.dropped_total == 2, "the total is kept for the status payload"


def test_limit_zero_queues_only_retained_state():
    box = Outbox(limit=0)
    box.put(msg("x", 1))
    box.put(msg("s", 1, retain=True))
    pending, report = box.drain()
    assert [m.topic for m in pending] == ["s"] and report and "x x1" in report
