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
