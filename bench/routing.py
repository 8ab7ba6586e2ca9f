"""Routing a message on a new topic: the old paho matcher per subscription, then every filter's
levels compared (``routing.Subscriptions`` until issue 14), vs the filter tree it uses now.

Each JPEG reaches the coordinator on a new topic (``<cam>/camera/<camera>/capture/<id>``), so
the per-topic cache never hits and every subscription is matched. The old path is reproduced
here verbatim (``paho.topic_matches_sub`` per filter, as ``mqtt.matches`` did before the split);
so is the levels-per-filter path of issue 10 (``_matches_levels`` on every filter); all run in
the same process, alternating, on the same filters and topics.

    .venv/bin/python bench/routing.py [--printers 1 50 200] [--topics 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import paho.mqtt.client as paho

from printmesh_core.messages import Handler, Message
from printmesh_core.routing import Subscriptions, _matches_levels, compile_filter

PER_PRINTER = [
    "printmesh/{p}/printer/status",
    "printmesh/{p}/printer/state",
    "printmesh/{p}/printer/job",
    "printmesh/{p}/printer/held",
    "printmesh/{p}/printer/profile",
    "printmesh/{p}/printer/hold/status",
    "printmesh/{p}/printer/cmd/response/+",
    "$share/coord/printmesh/{p}/printer/event",
    "printmesh/{p}cam/camera/status",
    "printmesh/{p}cam/camera/+/capture/+",
]
COMMON = ["printmesh/+/coordinator/cmd/+", "printmesh/coordinator/status", "homeassistant/status"]


def filters(printers: int) -> list[str]:
    return COMMON + [f.format(p=f"p{i}") for i in range(printers) for f in PER_PRINTER]


def old_matches(topic_filter: str, topic: str) -> bool:
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) == 3:
            topic_filter = parts[2]
    return bool(paho.topic_matches_sub(topic_filter, topic))


def old_route(subs: dict[str, tuple[int, list[Handler]]], topic: str) -> list[Handler]:
    return [h for f, (_, hs) in subs.items() if old_matches(f, topic) for h in hs]


def levels_route(subs: dict[str, tuple[int, list[Handler]]], topic: str) -> list[Handler]:
    """``Subscriptions.handlers_for`` before the filter tree: every filter's levels compared."""
    levels, normal = topic.split("/"), not topic.startswith("$")
    return [h for f, (_, hs) in subs.items() if _matches_levels(compile_filter(f), levels, normal) for h in hs]


def run(route: Callable[[str], list[Handler]], topics: list[str]) -> float:
    start = time.perf_counter()
    for topic in topics:
        route(topic)
    return (time.perf_counter() - start) / len(topics)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--printers", type=int, nargs="+", default=[1, 50, 200])
    ap.add_argument("--topics", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    def handler(m: Message) -> None:
        return None

    for printers in args.printers:
        fs = filters(printers)
        old: dict[str, tuple[int, list[Handler]]] = {f: (1, [handler]) for f in fs}
        new = Subscriptions()
        for f in fs:
            new.add(f, handler, 1)
        olds: list[float] = []
        mids: list[float] = []
        news: list[float] = []
        for r in range(args.rounds):
            topics = [f"printmesh/p{i % printers}cam/camera/c0/capture/{r}-{i}" for i in range(args.topics)]
            for t in topics[:50]:
                assert len(old_route(old, t)) == len(levels_route(old, t)) == len(new.handlers_for(t)) == 1
            olds.append(run(functools.partial(old_route, old), topics))
            mids.append(run(functools.partial(levels_route, old), topics))
            news.append(run(new.handlers_for, [t + "x" for t in topics]))
        o, m, n = (statistics.median(x) * 1e3 for x in (olds, mids, news))
        print(
            f"{len(fs):4d} subscriptions ({printers} printers): per new topic "
            f"paho-per-filter {o:.4f} ms, levels-per-filter {m:.4f} ms, filter tree {n:.4f} ms; "
            f"tree/levels {n / m:.3f}, tree/paho {n / o:.3f} "
            f"(median of {args.rounds} rounds x {args.topics} topics)"
        )


if __name__ == "__main__":
    main()
