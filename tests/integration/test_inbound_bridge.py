"""The bridge inside a real OctoPrint answers issue 13's malformed commands with `invalid_request`.

`move` with strings as numbers, `"layer": true` (which used to arm layer 1), non-finite
numbers, and a command nested 1,000 levels deep (which used to get no answer at all, only a
RecursionError in OctoPrint's log) each get their error answer with the request's id; the
bridge counts them in its retained status, nothing was armed, and it still serves a valid
request afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Observer
from tolerance_bridge import Bridge, run_bridge

from printmesh_core.topics import Topics
from printmesh_devkit.broker import LocalBroker

NODE = "inbridge"
BASE = f"printmesh/{NODE}/printer"
DEEP = "[" * 1000 + "1" + "]" * 1000
MALFORMED = [
    ("move", '{"id": "m-str", "x": "100", "y": "100"}'),
    ("move", '{"id": "m-bool", "x": true}'),
    ("move", '{"id": "m-nan", "x": NaN}'),
    ("move", '{"id": "m-huge", "z": 1e400}'),
    ("move", '{"id": "m-feed", "feedrate": "3000"}'),
    ("hold", '{"id": "h-true", "layer": true}'),
    ("hold", '{"id": "h-plan", "plan": {"layers": [true, "2"]}}'),
    ("hold", f'{{"id": "h-deep", "plan": {{"layers": {DEEP}}}}}'),
    ("release", f'{{"id": "r-deep", "hold_id": {DEEP}}}'),
    ("pause", f'{{"id": "p-deep", "x": {DEEP}}}'),
    ("cancel", '{"id": "c-nan", "x": NaN}'),
    ("gcode", f'{{"id": "g-deep", "lines": {DEEP}}}'),
    ("resume", '{"id": "u-long", "pad": "' + "x" * 300_000 + '"}'),
]


@pytest.fixture
def bridge(broker: LocalBroker, tmp_path: Path, observer: Observer) -> Iterator[Bridge]:
    topics = Topics("printmesh", NODE)
    yield from run_bridge(broker, tmp_path, observer, topics, topics.component("printer"))


def test_the_bridge_answers_every_malformed_command_invalid_request_and_arms_nothing(bridge: Bridge):
    obs = bridge.observer
    mark = obs.mark()
    for name, payload in MALFORMED:
        obs.publish(f"{BASE}/cmd/{name}", payload)
    for name, payload in MALFORMED:
        rid = payload.split('"id": "', 1)[1].split('"', 1)[0]
        answer = obs.topic(f"{BASE}/res/{name}", after=mark, where=lambda d, rid=rid: d["id"] == rid, timeout=15)
        assert not answer["ok"] and answer["error"]["code"] == "invalid_request", (name, answer)
    hold = obs.topic(f"{BASE}/hold", where=lambda d: True)
    assert hold["armed"] is None, "a malformed hold armed nothing"
    counted = obs.topic(f"{BASE}/status", after=mark, where=lambda d: d["rejected"] >= len(MALFORMED), timeout=20)
    assert counted["state"] == "online" and counted["failed"] == 0
    obs.publish(f"{BASE}/cmd/hold", '{"id": "ok-1", "plan": {"every": 5}}')
    assert obs.topic(f"{BASE}/res/hold", after=mark, where=lambda d: d["id"] == "ok-1")["ok"]
    obs.topic(f"{BASE}/hold", after=mark, where=lambda d: d["armed"] is not None and d["armed"]["every"] == 5)
    log = bridge.server.log()
    assert "RecursionError" not in log and "refused a message on" in log
