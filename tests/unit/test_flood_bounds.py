"""Costs that stay linear under floods: bounded per-sender tables, O(1) peer updates, one
re-announce per burst of Home Assistant births. No broker: the coordinator's link is fed
messages directly, the runtime is a stand-in with the attributes the link reads."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from coordinator_support import coordinator_config, printer_entry

from octoprint_printmesh.hold.link import HOLDERS_KEPT, HoldLink
from printmesh_coordinator.config import CoordinatorSettings
from printmesh_coordinator.link import Link
from printmesh_coordinator.messages import CoordinatorPresence, HoldStatusSeen, Input
from printmesh_core import contract
from printmesh_core.bounded import Bounded, Evictions
from printmesh_core.config import DiscoveryConfig, MqttConfig
from printmesh_core.debounce import Debouncer
from printmesh_core.discovery import SEEN_CAP, DiscoveryPublisher, Entity
from printmesh_core.messages import Message
from printmesh_core.models.printer import PrinterHold
from printmesh_core.topics import Topics

T = Topics("printmesh", "co")


# ------------------------------------------------------------------ Bounded
def test_a_table_fed_200k_unique_ids_stays_at_its_cap_and_counts_every_eviction():
    evictions = Evictions()
    table: Bounded[str, bool] = Bounded(256, "peers", evictions)
    for i in range(200_000):
        table.put(f"fake{i}/coordinator", True)
    assert len(table) == 256
    assert table.evicted == 200_000 - 256
    assert evictions.total == 200_000 - 256 and evictions.by_table() == {"peers": 200_000 - 256}
    assert "fake199999/coordinator" in table and "fake0/coordinator" not in table


def test_lru_order_get_refreshes_peek_does_not():
    table: Bounded[str, int] = Bounded(2, "t")
    table.put("a", 1)
    table.put("b", 2)
    assert table.get("a") == 1  # a is now the most recent: b goes first
    table.put("c", 3)
    assert list(table) == ["a", "c"]
    assert table.peek("a") == 1
    table.put("d", 4)  # peek did not refresh a
    assert list(table) == ["c", "d"] and table.evicted == 2
    assert table.pop("c") == 3 and table.pop("zz") is None and len(table) == 1


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError, match="cap"):
        Bounded(0, "t")


def test_putting_costs_the_same_with_a_full_table():
    """O(1): a put into a table at its cap costs about what a put into a small one costs."""

    def per_put(cap: int) -> float:
        table: Bounded[int, bool] = Bounded(cap, "t")
        for i in range(cap):
            table.put(i, True)
        t0 = time.perf_counter()
        for i in range(cap, cap + 50_000):
            table.put(i, True)
        return (time.perf_counter() - t0) / 50_000

    small, large = min(per_put(100) for _ in range(3)), min(per_put(100_000) for _ in range(3))
    assert large < small * 5, f"a put costs {large * 1e9:.0f} ns at 100k entries vs {small * 1e9:.0f} ns at 100"


# ------------------------------------------------------------------ Debouncer
def test_a_burst_of_1000_triggers_runs_the_action_once():
    ran = threading.Event()
    runs: list[float] = []
    debouncer = Debouncer(lambda: (runs.append(time.monotonic()), ran.set()), quiet=0.2, longest=5.0, name="t")
    try:
        for _ in range(1000):
            debouncer.trigger()
        last = time.monotonic()
        assert ran.wait(5)
        time.sleep(0.5)
        assert len(runs) == 1 and debouncer.runs == 1 and debouncer.triggers == 1000
        assert runs[0] - last >= 0.19, "only once the burst has been quiet for 'quiet' seconds"
        debouncer.trigger()  # a later burst gets its own run
        time.sleep(0.6)
        assert len(runs) == 2
    finally:
        debouncer.close()


def test_triggers_that_never_stop_still_run_the_action_within_longest():
    runs: list[float] = []
    debouncer = Debouncer(lambda: runs.append(time.monotonic()), quiet=0.2, longest=0.5, name="t")
    try:
        start = time.monotonic()
        while time.monotonic() - start < 1.3:
            debouncer.trigger()
            time.sleep(0.01)
        assert runs, "no run although the burst lasted longer than 'longest'"
        assert runs[0] - start < 0.5 + 0.3
        assert len(runs) <= 3
    finally:
        debouncer.close()


# ------------------------------------------------------------------ the coordinator's peers
class Runtime:
    """What the link uses of the runtime: its config, its evictions, and (un)subscribing."""

    def __init__(self) -> None:
        self.config = MqttConfig()
        self.evictions = Evictions()
        self.root = T.root
        self.handlers: dict[str, Any] = {}

    def subscribe(self, topic_filter: str, handler: Any, *, qos: int = 1, wait: float | None = None) -> bool:
        self.handlers[topic_filter] = handler
        return True

    def subscribe_relative(self, topic_filter: str, handler: Any, *, qos: int = 1, wait: float | None = None) -> bool:
        return self.subscribe(f"{self.root}/{topic_filter}", handler, qos=qos)

    def unsubscribe(self, topic_filter: str) -> None:
        del self.handlers[topic_filter]

    def on_connected(self, hook: Any) -> None:
        pass

    def status(self, node: str, state: str = "online") -> None:
        """A coordinator's status, as the broker would deliver it (only if we subscribed)."""
        topic = T.absolute(f"{node}/coordinator/status")
        payload = json.dumps({"ts": 1.0, "state": state, "component": "coordinator", "version": "x"}).encode()
        handler = self.handlers.get(topic)
        if handler is not None:
            handler(Message(topic, payload, 1, True))


def make_link(tmp_path: Path, printers: int = 1) -> tuple[Link, Runtime, list[tuple[str | None, Input]]]:
    cfg = coordinator_config("co", tmp_path, [printer_entry(f"p{i + 1}") for i in range(printers)])
    section = CoordinatorSettings.model_validate(cfg).coordinator
    runtime = Runtime()
    delivered: list[tuple[str | None, Input]] = []
    link = Link(cast(Any, runtime), T, T.component(contract.COORDINATOR, "co"), section,
                lambda p, m: delivered.append((p, m)))  # fmt: skip
    link.attach()
    return link, runtime, delivered


def hold(holder: str | None, ts: float = 0.0) -> PrinterHold:
    return PrinterHold(phase="idle", holder=holder, ts=ts)


def test_no_wildcard_on_coordinator_statuses_so_a_flood_of_them_never_arrives(tmp_path):
    _, runtime, delivered = make_link(tmp_path)
    assert not [f for f in runtime.handlers if f.endswith("/coordinator/status")]
    for i in range(1000):
        runtime.status(f"fake{i}")
    assert delivered == []


def test_200k_hold_statuses_naming_unique_holders_follow_one_holder_per_printer(tmp_path):
    link, runtime, delivered = make_link(tmp_path, printers=2)
    before = len(runtime.handlers)
    for i in range(200_000):
        link.hold_status(f"p{i % 2 + 1}", hold(f"fake{i}/coordinator"))
    assert len(link.holders) == 2 and len(link.holder_filters) == 2
    assert len(runtime.handlers) == before + 2, "every other holder's subscription was dropped"
    assert len(delivered) == 200_000 and all(not m.holder_online for _, m in delivered)  # type: ignore[union-attr]


def test_the_holder_of_our_plan_is_followed_and_its_status_handed_on(tmp_path):
    link, runtime, delivered = make_link(tmp_path)
    link.hold_status("p1", hold("other/coordinator"))
    assert delivered[-1] == ("p1", HoldStatusSeen(hold("other/coordinator"), False)), "not heard yet"
    runtime.status("other")
    assert delivered[-1] == ("p1", CoordinatorPresence("other/coordinator", True))
    link.hold_status("p1", hold("other/coordinator", ts=2.0))
    assert delivered[-1] == ("p1", HoldStatusSeen(hold("other/coordinator", ts=2.0), True))
    runtime.status("other", "offline")
    assert delivered[-1] == ("p1", CoordinatorPresence("other/coordinator", False))
    link.hold_status("p1", hold("co/coordinator"))  # ours now: the other one is no longer followed
    assert "other/coordinator" not in link.holders and "co/coordinator" not in link.holders
    count = len(delivered)
    runtime.status("other")
    assert len(delivered) == count


def test_an_evicted_entry_is_handed_to_on_evict():
    dropped: list[tuple[str, str]] = []
    table: Bounded[str, str] = Bounded(2, "t", on_evict=lambda k, v: dropped.append((k, v)))
    for key in "abcd":
        table.put(key, key.upper())
    assert dropped == [("a", "A"), ("b", "B")]


# ------------------------------------------------------------------ the bridge's holders
def test_the_bridge_follows_a_bounded_number_of_holders_and_drops_the_oldest_subscription():
    runtime = Runtime()
    node: Any = SimpleNamespace(runtime=runtime, topics=T)
    link = HoldLink(node, lambda message: None)
    for i in range(1000):
        assert link.watch_holder(f"c{i}/coordinator") is None
    assert link.watch_holder("c999/coordinator") is None  # the current one again: nothing new
    follows = [f for f in runtime.handlers if f.endswith("/coordinator/status")]
    assert len(follows) == HOLDERS_KEPT
    assert T.absolute("c999/coordinator/status") in follows and T.absolute("c0/coordinator/status") not in follows
    assert runtime.evictions.by_table() == {"bridge holders": 1000 - HOLDERS_KEPT}


# ------------------------------------------------------------------ discovery
class DiscoveryRuntime(Runtime):
    def __init__(self) -> None:
        super().__init__()
        self.connected = True
        self.published: list[tuple[str, bytes | str]] = []

    def on_connected(self, hook: Any) -> None:
        pass

    def publish_absolute(self, topic: str, payload: bytes | str, **kwargs: Any) -> None:
        self.published.append((topic, payload))


def test_1000_births_give_one_reannounce_and_stale_configs_stay_bounded():
    runtime = DiscoveryRuntime()
    config = DiscoveryConfig(birth_quiet=0.1, birth_longest=2.0)
    discovery = DiscoveryPublisher(cast(Any, runtime), config, "n1", "host", "printmesh/n1/host/status")
    births: list[int] = []
    discovery.on_birth(lambda: births.append(1))
    discovery.attach()
    try:
        prefix = f"homeassistant/sensor/{discovery.topics.ha_node}"
        for i in range(SEEN_CAP + 500):  # before our entities are known: remembered, bounded
            discovery._on_own_config(Message(f"{prefix}/fake{i}/config", b"{}", 1, True))
        assert len(discovery._seen) == SEEN_CAP
        assert runtime.evictions.by_table() == {"discovery configs": 500}
        discovery.set_entities([Entity("sensor", "cpu", "CPU")])
        cleared = [t for t, p in runtime.published if p == b""]
        assert len(cleared) == SEEN_CAP and len(discovery._seen) == 0
        runtime.published.clear()
        for _ in range(1000):
            discovery._on_birth(Message("homeassistant/status", b"online", 1, False))
        time.sleep(0.6)
        configs = [t for t, p in runtime.published if p != b""]
        assert configs == [f"{prefix}/cpu/config"] and births == [1]
        discovery._on_own_config(Message(f"{prefix}/intruder/config", b"{}", 1, True))  # judged alone, at once
        assert runtime.published[-1] == (f"{prefix}/intruder/config", b"")
    finally:
        discovery.close()
