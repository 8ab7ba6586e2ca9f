"""Which handlers an incoming topic reaches: our subscriptions and their topic filters.

Matching follows paho's ``topic_matches_sub`` (MQTT 3.1.1 section 4.7): ``+`` takes one
level, a trailing ``#`` takes the rest including its parent level, and a topic starting
with ``$`` is not matched by a filter starting with a wildcard. A shared subscription
(``$share/group/filter``) matches as its plain filter. Filters are split once, when
subscribed, into a tree of levels (``FilterTree``), so routing a new topic walks only the
branches that can match it, whatever the number of filters.
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


class _Level:
    """One level of the filter tree: the filters that end here, and the next levels by name."""

    __slots__ = ("ending", "next")

    def __init__(self) -> None:
        self.ending: list[str] = []
        self.next: dict[str, _Level] = {}


class FilterTree:
    """Our filters as a tree of levels, so resolving a new topic walks only the branches that can
    match it (a few dict lookups per level) instead of trying every filter: each capture's image
    arrives on a topic of its own, and a coordinator of 200 printers holds ~2,000 filters."""

    def __init__(self) -> None:
        self._root = _Level()

    def add(self, topic_filter: str) -> None:
        node = self._root
        for part in compile_filter(topic_filter):
            node = node.next.setdefault(part, _Level())
        if topic_filter not in node.ending:
            node.ending.append(topic_filter)

    def remove(self, topic_filter: str) -> None:
        path = [self._root]
        for part in compile_filter(topic_filter):
            child = path[-1].next.get(part)
            if child is None:
                return
            path.append(child)
        if topic_filter in path[-1].ending:
            path[-1].ending.remove(topic_filter)
        for parent, part in zip(reversed(path[:-1]), reversed(compile_filter(topic_filter)), strict=True):
            child = parent.next[part]
            if child.ending or child.next:
                break
            del parent.next[part]

    def matching(self, topic: str) -> set[str]:
        """Every filter ``matches(filter, topic)`` is true for."""
        found: set[str] = set()
        self._walk(self._root, topic.split("/"), 0, not topic.startswith("$"), found)
        return found

    def _walk(self, node: _Level, levels: list[str], i: int, normal: bool, found: set[str]) -> None:
        wild = normal or i > 0  # a '$' topic is not matched by a wildcard in the first level
        rest = node.next.get("#")
        if rest is not None and wild:
            found.update(rest.ending)  # 'a/#' takes 'a' and everything under it
        if i == len(levels):
            found.update(node.ending)
            return
        exact = node.next.get(levels[i])
        if exact is not None:
            self._walk(exact, levels, i + 1, normal, found)
        one = node.next.get("+")
        if one is not None and wild and levels[i] != "+":
            self._walk(one, levels, i + 1, normal, found)


class Subscriptions:
    """Our filters with their QoS and handlers, a tree of them, and a bounded cache of topic -> handlers.

    Not thread-safe by itself: the runtime calls it under its lock.
    """

    def __init__(self) -> None:
        self._subs: dict[str, tuple[int, list[Handler]]] = {}
        self._order: dict[str, int] = {}  # filter -> when first subscribed (handlers keep that order)
        self._tree = FilterTree()
        self._routes: dict[str, list[Handler]] = {}  # topic -> handlers, cleared on subscribe
        self._added = 0

    def add(self, topic_filter: str, handler: Handler, qos: int) -> int:
        """Register ``handler``; returns the filter's QoS (the highest asked for)."""
        old_qos, handlers = self._subs.get(topic_filter, (qos, []))
        handlers.append(handler)
        self._subs[topic_filter] = (max(qos, old_qos), handlers)
        if topic_filter not in self._order:
            self._order[topic_filter] = self._added
            self._added += 1
            self._tree.add(topic_filter)
        self._routes.clear()
        return max(qos, old_qos)

    def remove(self, topic_filter: str) -> bool:
        """Forget ``topic_filter`` and its handlers; False if it was not ours."""
        if self._subs.pop(topic_filter, None) is None:
            return False
        self._order.pop(topic_filter, None)
        self._tree.remove(topic_filter)
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
            found = sorted(self._tree.matching(topic), key=self._order.__getitem__)
            handlers = [h for f in found for h in self._subs[f][1]]
            if len(self._routes) > ROUTE_CACHE_LIMIT:
                self._routes.clear()
            self._routes[topic] = handlers
        return handlers
