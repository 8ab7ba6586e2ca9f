"""Per-sender tables that a flood cannot grow: a capped LRU map whose evictions are counted.

Anybody who can publish can invent senders: 200,000 coordinator statuses with unique ids in
ten seconds, one per made-up printer. Every table keyed by something a message names (a
peer, a printer, a topic) is therefore a ``Bounded``: each update is O(1) (a dict and its
order, nothing copied), and past ``cap`` entries the least recently used one goes. The
evictions are counted in ``Evictions``, which the runtime reports in the component's
retained status (``evicted``), so a flood is visible after the fact and not only in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_CAP = 1024  # entries per table when the component does not say


class Evictions:
    """How many entries bounded tables dropped, per table and in total (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._hooks: list[Callable[[], None]] = []

    def count(self, table: str, n: int = 1) -> None:
        with self._lock:
            self._counts[table] = self._counts.get(table, 0) + n
        for hook in list(self._hooks):
            hook()

    def on_change(self, hook: Callable[[], None]) -> None:
        """Called (from the evicting thread) after every count; it must be cheap, e.g. a debouncer's poke."""
        self._hooks.append(hook)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def by_table(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Bounded(Generic[K, V]):
    """An LRU map of at most ``cap`` entries; ``put`` and ``get`` refresh an entry, both O(1).

    Not thread-safe by itself: each owner uses it from one thread or under its own lock.
    """

    def __init__(
        self,
        cap: int,
        name: str,
        evictions: Evictions | None = None,
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        if cap < 1:
            raise ValueError(f"{name}: cap must be at least 1, not {cap}")
        self.cap = cap
        self.name = name
        self.evicted = 0
        self._evictions = evictions
        self._on_evict = on_evict  # e.g. drop the subscription the entry stood for
        self._items: OrderedDict[K, V] = OrderedDict()

    def put(self, key: K, value: V) -> None:
        items = self._items
        if key in items:
            items.move_to_end(key)
        items[key] = value
        if len(items) > self.cap:
            old_key, old_value = items.popitem(last=False)
            self.evicted += 1
            if self._evictions is not None:
                self._evictions.count(self.name)
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value (refreshed as recently used), or ``default``."""
        items = self._items
        if key not in items:
            return default
        items.move_to_end(key)
        return items[key]

    def peek(self, key: K, default: V | None = None) -> V | None:
        """The value without refreshing it."""
        return self._items.get(key, default)

    def pop(self, key: K, default: V | None = None) -> V | None:
        return self._items.pop(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))

    def items(self) -> list[tuple[K, V]]:
        """Every entry, least recently used first, without refreshing any."""
        return list(self._items.items())
