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


def test_messages_of_a_lost_connection_go_before_the_queue_and_its_newer_state_wins():
    box = Outbox(limit=3)
    box.put(Outgoing("a/state", b"idle", 1, True))
    box.put(Outgoing("a/event", b"released", 1, False))
    box.put_earlier([Outgoing("a/state", b"held", 1, True), Outgoing("b/state", b"on", 1, True)])
    box.put_earlier([Outgoing("a/event", b"e1", 1, False), Outgoing("a/event", b"e2", 1, False)])
    box.put_earlier([Outgoing("a/event", b"e0", 1, False)])  # beyond the bound: the oldest is dropped, counted
    pending, report = box.drain()
    assert [(o.topic, o.payload) for o in pending] == [
        ("b/state", b"on"), ("a/state", b"idle"), ("a/event", b"e1"), ("a/event", b"e2"), ("a/event", b"released")
    ]  # fmt: skip
    assert box.dropped_total == 1 and report is not None and "a/event x1" in report
