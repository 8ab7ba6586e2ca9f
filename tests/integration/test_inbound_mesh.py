"""Issue 13's repros against the real processes on a real mosquitto: nothing they send kills anything.

The coordinator gets `held` events with started_at 1e20, -1e20 or NaN, or z NaN, a job with
started_at NaN, live and retained (it must start over them and stay up), and then still
captures a valid hold. Every agent answers a command nested 1,000 levels deep with
`invalid_request` (on res/<name>, or on an MQTT 5 response topic inside the reply namespace),
and counts what it refused in its retained status. The bridge's side, inside a real OctoPrint,
is tests/integration/test_inbound_bridge.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Observer
from coordinator_support import FakeBridge, camera_config, coordinator_config, printer_entry

from printmesh_core.topics import Topics, reply_topic

PRINTER, COORD = "octo", "coord"
HELD = f"printmesh/{PRINTER}/printer/held"
EVENT = f"printmesh/{PRINTER}/printer/event"
JOB = f"printmesh/{PRINTER}/printer/job"
BODY = {"hold_id": 7, "layer": 5, "origin": {"x": 50.0, "y": 60.0, "z": 0.8}, "z": 1.0, "path": "a.gcode",
        "started_at": 1_700_000_000.0}  # fmt: skip


def held(**body: Any) -> bytes:
    doc = {"ts": 1_700_000_001.0, "event": "held", "source": "printmesh", "payload": {**BODY, **body}}
    return json.dumps(doc).encode()


def killers() -> list[tuple[str, bytes]]:
    """(topic, payload) of every message of the issue that killed the coordinator, and their kin."""
    nan_start = held().replace(b"1700000000.0", b"NaN")
    nan_z = held().replace(b'"z": 1.0', b'"z": NaN')
    out = []
    for payload in (held(started_at=1e20), held(started_at=-1e20), nan_start, nan_z, held(layer=True),
                    held(z="1.0"), held(origin={"x": "50", "y": 60, "z": 1})):  # fmt: skip
        out += [(HELD, payload), (EVENT, payload)]
    out.append((JOB, b'{"ts": 1700000000, "file_name": "a.gcode", "started_at": NaN}'))
    out.append((JOB, b'{"ts": 1700000000, "file_name": "a.gcode", "started_at": 1e20}'))
    out.append((HELD, b"[" * 1000 + b"]" * 1000))
    return out


def status(observer: Observer, node: str, component: str, after: int, where: Any, timeout: float = 20) -> Any:
    return observer.topic(f"printmesh/{node}/{component}/status", after=after, where=where, timeout=timeout)


def test_the_coordinator_starts_over_retained_killers_survives_live_ones_and_still_captures(
    broker, observer: Observer, run_agent, tmp_path
):
    bridge = FakeBridge(broker, PRINTER).start()
    try:
        observer.publish(HELD, held(started_at=1e20), retain=True)
        observer.publish(JOB, b'{"ts": 1700000000, "file_name": "a.gcode", "started_at": NaN}', retain=True)
        run_agent("camera", camera_config())
        shared = {"sharing": "subscription"}  # it reads the shared 'held' topic too, where the junk is retained
        entries = [printer_entry(PRINTER)]
        coord = run_agent("coordinator", coordinator_config(COORD, tmp_path / "caps", entries, **shared))
        status(observer, COORD, "coordinator", 0, lambda d: d["state"] == "online" and d["rejected"] >= 2)
        bridge.wait_armed(holder=f"{COORD}/coordinator")
        observer.publish(HELD, b"", retain=True)
        bridge.start_print("a.gcode")  # a valid retained job replaces the junk one
        mark = observer.mark()
        sent = killers()
        for topic, payload in sent:
            observer.publish(topic, payload)
        assert bridge.hold_at(5, z=1.0).released.wait(30), coord.log()
        after = status(observer, COORD, "coordinator", mark, lambda d: d["rejected"] >= 2 + len(sent))
        assert after["failed"] == 0 and after["state"] == "online", after
        assert coord.proc.poll() is None and "Traceback" not in coord.log()
        (folder,) = (tmp_path / "caps" / PRINTER).iterdir()
        meta = json.loads(next(folder.glob("layer_0005_metadata_*.json")).read_text())
        assert meta["complete"] and len(meta["images"]) == 9, meta["failures"]
        assert "refused a message on" in coord.log() and coord.stop() == 0
    finally:
        bridge.stop()


def deep(rid: str, field: str = "x", depth: int = 1000) -> bytes:
    return f'{{"id": "{rid}", "{field}": {"[" * depth}1{"]" * depth}}}'.encode()


AGENTS = [
    ("host", "refresh", {"node_id": "deephost"}),
    ("sensors", "read", {"node_id": "deepsens", "sensors": {"sensors": [{"name": "s", "driver": "simulated"}]}}),
    ("camera", "capture", camera_config("deepcam")),
    ("coordinator", "abort", None),
]


@pytest.mark.parametrize(("component", "command", "config"), AGENTS, ids=[a[0] for a in AGENTS])
def test_every_agent_answers_a_command_nested_1000_deep_with_invalid_request(
    broker, observer: Observer, run_agent, tmp_path, component: str, command: str, config: Any
):
    if config is None:
        config = coordinator_config("deepcoord", tmp_path / "caps", [printer_entry(PRINTER)])
    node = config["node_id"]
    agent = run_agent(component, config)
    status(observer, node, component, 0, lambda d: d["state"] == "online")
    mark = observer.mark()
    base = f"printmesh/{node}/{component}"
    observer.publish(f"{base}/cmd/{command}", deep("deep-1"))
    answer = observer.topic(f"{base}/res/{command}", after=mark, where=lambda d: d["id"] == "deep-1")
    assert not answer["ok"] and answer["error"]["code"] == "invalid_request", answer
    assert "deeper than" in answer["error"]["message"]
    # MQTT 5: the answer goes to a response topic inside the reply namespace, correlation data echoed
    reply = "printmesh/" + reply_topic("tester", Topics("printmesh", node).component(component))
    observer.runtime.publish_absolute(f"{base}/cmd/{command}", deep("deep-2"), qos=1, response_topic=reply,
                                      correlation_data=b"c-2")  # fmt: skip
    answer = observer.topic(reply, after=mark, where=lambda d: d["id"] == "deep-2")
    assert answer["error"]["code"] == "invalid_request"
    assert [m.correlation_data for m in observer.on(reply)] == [b"c-2"]
    for payload in (deep("deep-3", depth=100_000), b'{"id": "deep-4", "x": NaN}', b"[" * 200_000):
        observer.publish(f"{base}/cmd/{command}", payload)
    answer = observer.topic(f"{base}/res/{command}", after=mark, where=lambda d: d["id"] == "deep-4")
    assert answer["error"]["code"] == "invalid_request"
    observer.topic(f"{base}/res/{command}", after=mark, where=lambda d: d["id"] == "deep-3")
    counted = status(observer, node, component, mark, lambda d: d["rejected"] >= 5)
    assert counted["failed"] == 0 and agent.proc.poll() is None
    assert "RecursionError" not in agent.log() and "Traceback" not in agent.log()
