"""Our topic-filter matcher agrees with paho's ``topic_matches_sub`` (no broker)."""

from __future__ import annotations

import itertools
import random

import paho.mqtt.client as paho

from printmesh_core.messages import Message
from printmesh_core.routing import Subscriptions, matches

LEVELS = ["a", "b", "", "$SYS", "+", "#"]


def _paho(topic_filter: str, topic: str) -> bool:
    if topic_filter.startswith("$share/") and len(topic_filter.split("/", 2)) == 3:
        topic_filter = topic_filter.split("/", 2)[2]
    return bool(paho.topic_matches_sub(topic_filter, topic))


def test_every_short_filter_and_topic_agree_with_paho() -> None:
    words = ["/".join(p) for n in (1, 2, 3) for p in itertools.product(LEVELS, repeat=n)]
    topics = [w for w in words if "+" not in w and "#" not in w]
    filters = [w for w in words if "#" not in w[:-1]]  # '#' only last, as a broker accepts
    disagree = [(f, t) for f in filters for t in topics if matches(f, t) != _paho(f, t)]
    assert disagree == []
    assert sum(matches(f, t) for f in filters for t in topics) > 100  # not vacuous


def test_random_filters_agree_with_paho() -> None:
    rng = random.Random(10)
    for _ in range(3000):
        topic = "/".join(
            rng.choice(["printmesh", "p1", "printer", "event", "$SYS", ""]) for _ in range(rng.randint(1, 5))
        )
        parts = [rng.choice(["printmesh", "p1", "printer", "event", "+"]) for _ in range(rng.randint(1, 5))]
        if rng.random() < 0.3:
            parts.append("#")
        topic_filter = ("$share/g/" if rng.random() < 0.2 else "") + "/".join(parts)
        assert matches(topic_filter, topic) == _paho(topic_filter, topic), (topic_filter, topic)


def test_handlers_come_in_subscription_order_and_the_cache_follows_new_subscriptions() -> None:
    subs = Subscriptions()
    seen: list[str] = []
    assert subs.add("printmesh/+/printer/event", lambda m: seen.append("plus"), 0) == 0
    assert subs.add("$share/g/printmesh/#", lambda m: seen.append("share"), 1) == 1
    assert subs.add("printmesh/+/printer/event", lambda m: seen.append("plus2"), 1) == 1
    message = Message("printmesh/p1/printer/event", b"{}", 1, False)
    for handler in subs.handlers_for(message.topic):
        handler(message)
    assert seen == ["plus", "plus2", "share"]
    assert subs.handlers_for("other/p1") == []
    subs.add("other/#", lambda m: seen.append("other"), 2)
    assert len(subs.handlers_for("other/p1")) == 1
    assert list(subs.filters()) == [("printmesh/+/printer/event", 1), ("$share/g/printmesh/#", 1), ("other/#", 2)]


def test_the_filter_tree_finds_exactly_the_filters_that_match() -> None:
    """A new topic is resolved by walking the tree: it must agree with ``matches`` on every filter."""
    words = ["/".join(p) for n in (1, 2, 3) for p in itertools.product(LEVELS, repeat=n)]
    topics = [w for w in words if "+" not in w and "#" not in w]
    filters = [w for w in words if "#" not in w[:-1]] + ["$share/g/a/+", "$share/g/#", "$share/g/$SYS/#"]
    subs = Subscriptions()
    for f in filters:
        subs.add(f, lambda m, f=f: None, 0)
    tree = subs._tree
    for topic in topics:
        assert tree.matching(topic) == {f for f in filters if matches(f, topic)}, topic
    assert sum(len(tree.matching(t)) for t in topics) > 100  # not vacuous


def test_removing_a_filter_takes_it_out_of_the_tree_and_keeps_the_others() -> None:
    subs = Subscriptions()
    subs.add("printmesh/+/camera/bed/capture/+", lambda m: None, 1)
    subs.add("printmesh/p1/camera/bed/capture/+", lambda m: None, 1)
    subs.add("printmesh/#", lambda m: None, 1)
    topic = "printmesh/p1/camera/bed/capture/abc-1.2"
    assert len(subs.handlers_for(topic)) == 3
    assert subs.remove("printmesh/p1/camera/bed/capture/+")
    assert not subs.remove("printmesh/p1/camera/bed/capture/+")
    assert len(subs.handlers_for(topic)) == 2
    assert subs.remove("printmesh/#") and subs.remove("printmesh/+/camera/bed/capture/+")
    assert subs.handlers_for(topic) == [] and subs._tree.matching(topic) == set()
    assert subs._tree._root.next == {}  # emptied branches are pruned
    subs.add("printmesh/#", lambda m: None, 1)  # and a filter can come back
    assert len(subs.handlers_for(topic)) == 1


def test_many_one_shot_topics_among_many_filters_route_like_matches() -> None:
    """A coordinator of 200 printers: ~10 filters each; every capture's image on a topic of its own."""
    subs = Subscriptions()
    filters = [f"printmesh/p{i}/{leaf}" for i in range(200) for leaf in ("printer/status", "printer/hold",
               "printer/event", "camera/status", "camera/bed/availability", "camera/bed/capture/+")]  # fmt: skip
    filters.append("printmesh/+/coordinator/status")
    for f in filters:
        subs.add(f, lambda m, f=f: f, 1)
    rng = random.Random(3)
    for n in range(500):
        topic = f"printmesh/p{rng.randrange(220)}/camera/bed/capture/s-{n}"
        assert [h(Message(topic, b"", 0, False)) for h in subs.handlers_for(topic)] == [
            f for f in filters if matches(f, topic)
        ]
