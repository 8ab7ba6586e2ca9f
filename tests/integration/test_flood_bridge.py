"""Home Assistant's birth sent 1,000 times in a second to the bridge inside a real OctoPrint: it
re-announces its discovery once (the same core code as every agent, see test_flood.py), and
OctoPrint keeps running."""

from __future__ import annotations

import time
from collections import Counter

from tolerance_bridge import run_bridge

from printmesh_core import contract
from printmesh_core.topics import Topics

T = Topics("printmesh", "flood")
PRINTER = T.component(contract.PRINTER, "fp1")
HA_NODE = "printmesh_fp1_printer"


def configs(messages: list) -> Counter[str]:
    out: Counter[str] = Counter()
    for m in messages:
        parts = m.topic.split("/")
        if len(parts) == 5 and parts[0] == "homeassistant" and parts[2] == HA_NODE and m.payload:
            out[m.topic] += 1
    return out


def test_a_thousand_births_in_a_second_give_the_bridge_one_reannounce(broker, observer, tmp_path):
    bridge = run_bridge(broker, tmp_path, observer, T, PRINTER)
    server = next(bridge)
    try:
        time.sleep(5.0)  # the first announces (connect, the profile's entities) are over
        announced = configs(observer.messages)
        assert announced, "the bridge announced nothing"
        mark = observer.mark()
        start = time.monotonic()
        for i in range(1000):
            observer.publish("homeassistant/status", "online")
            if i % 100 == 99:
                time.sleep(max(0.0, start + (i + 1) / 1000 - time.monotonic()))
        assert time.monotonic() - start < 1.5
        time.sleep(8.0)
        with observer.cond:
            again = configs(observer.messages[mark:])
        assert set(again) == set(announced), "every entity re-announced"
        assert all(n == 1 for n in again.values()), f"more than one re-announce per burst: {again}"
        assert server.server.api("GET", "/api/job")["state"] in ("Operational", "Printing")
    finally:
        next(bridge, None)
