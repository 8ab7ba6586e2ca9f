"""Which handlers an incoming topic reaches: our subscriptions and their topic filters.

Matching follows paho's ``topic_matches_sub`` (MQTT 3.1.1 section 4.7): ``+`` takes one
level, a trailing ``#`` takes the rest including its parent level, and a topic starting
with ``$`` is not matched by a filter starting with a wildcard. A shared subscription
(``$share/group/filter``) matches as its plain filter. Filters are split once, when
subscribed, so routing a new topic costs no per-topic parsing of every filter.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from printmesh_core.messages import Handler

ROUTE_CACHE_LIMIT = 4096  # e.g. one topic per capture id: keep the cache bounded


@functools.lru_cache(maxsize=4096)
def compile_filter(topic_filter: str) -> tuple[str, ...]:
    """The filter's levels, with a ``$share/group/`` prefix removed."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) == 3:
            topic_filter = parts[2]
    return tuple(topic_filter.split("/"))


def _matches_levels(levels: tuple[str, ...], topic: list[str], normal: bool) -> bool:
    for i, part in enumerate(levels):
        if part == "#":
            if i == len(levels) - 1 and (normal or i > 0):
                return True
            if i == len(topic) or topic[i] != "#":
                return False
            continue
        if i == len(topic):
            return False
        if part == "+":
            if not (normal or i > 0):
                return False
        elif part != topic[i]:
            return False
    return len(levels) == len(topic)


def matches(topic_filter: str, topic: str) -> bool:
    """Does ``topic`` match ``topic_filter``; a shared subscription matches as its plain filter."""
    return _matches_levels(compile_filter(topic_filter), topic.split("/"), not topic.startswith("$"))


class Subscriptions:
    """Our filters with their QoS and handlers, and a bounded cache of topic -> handlers.

    Not thread-safe by itself: the runtime calls it under its lock.
    """

    def __init__(self) -> None:
        self._subs: dict[str, tuple[int, list[Handler]]] = {}
        self._levels: dict[str, tuple[str, ...]] = {}
        self._routes: dict[str, list[Handler]] = {}  # topic -> handlers, cleared on subscribe

    def add(self, topic_filter: str, handler: Handler, qos: int) -> int:
        """Register ``handler``; returns the filter's QoS (the highest asked for)."""
        old_qos, handlers = self._subs.get(topic_filter, (qos, []))
        handlers.append(handler)
        self._subs[topic_filter] = (max(qos, old_qos), handlers)
        self._levels[topic_filter] = compile_filter(topic_filter)
        self._routes.clear()
        return max(qos, old_qos)

    def remove(self, topic_filter: str) -> bool:
        """Forget ``topic_filter`` and its handlers; False if it was not ours."""
        if self._subs.pop(topic_filter, None) is None:
            return False
        self._levels.pop(topic_filter, None)
        self._routes.clear()
        return True

    def __bool__(self) -> bool:
        return bool(self._subs)

    def filters(self) -> Iterator[tuple[str, int]]:
        """Every filter with its QoS, in the order first subscribed (to restore on connect)."""
        for topic_filter, (qos, _) in self._subs.items():
            yield topic_filter, qos

    def handlers_for(self, topic: str) -> list[Handler]:
        """Handlers of every matching filter, in subscription order; cached per topic."""
        handlers = self._routes.get(topic)
        if handlers is None:
            levels = topic.split("/")
            normal = not topic.startswith("$")
            handlers = [
                h for f, (_, hs) in self._subs.items() if _matches_levels(self._levels[f], levels, normal) for h in hs
            ]
            if len(self._routes) > ROUTE_CACHE_LIMIT:
                self._routes.clear()
            self._routes[topic] = handlers
        return handlers
