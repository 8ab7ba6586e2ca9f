"""Floods on a real mosquitto, against the real agent processes.

* Home Assistant's birth sent 1,000 times in a second: every component re-announces its
  discovery once (it used to re-announce, and republish its state, for every birth: 45,000
  publishes, and memory that was not given back).
* A burst of fake coordinator statuses with unique ids, hold statuses naming unique holders and
  events: the coordinator stays up, online and answering, and its memory stays at its baseline.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import Observer, make_runtime
from coordinator_support import camera_config, coordinator_config, printer_entry

from printmesh_core.messages import Message
from printmesh_devkit.broker import LocalBroker

SENSOR = {"name": "sim", "driver": "simulated", "interval": 1.0}
COMPONENTS = {  # component -> (config, its HA node in discovery topics)
    "host": ({"node_id": "h1", "host": {"interval": 1.0}}, "printmesh_h1_host"),
    "sensors": ({"node_id": "s1", "sensors": {"sensors": [SENSOR]}}, "printmesh_s1_sensors"),
    "camera": (camera_config("cam"), "printmesh_cam_camera"),
    "coordinator": (coordinator_config("co", "CAPTURES", [printer_entry("p1")]), "printmesh_co_coordinator"),
}


def configs_by_component(messages: list[Message]) -> dict[str, Counter[str]]:
    """Discovery config publishes (not the clearing empty ones), per component, per topic."""
    out: dict[str, Counter[str]] = {name: Counter() for name in COMPONENTS}
    for m in messages:
        parts = m.topic.split("/")
        if len(parts) == 5 and parts[0] == "homeassistant" and parts[-1] == "config" and m.payload:
            for name, (_, ha_node) in COMPONENTS.items():
                if parts[2] == ha_node:
                    out[name][m.topic] += 1
    return out


def test_a_thousand_births_in_a_second_give_one_reannounce_per_component(broker, observer, run_agent, tmp_path):
    agents = {}
    for name, (config, _) in COMPONENTS.items():
        if name == "coordinator":
            config = coordinator_config("co", tmp_path / "captures", [printer_entry("p1")])
        agents[name] = run_agent(name, config)
    for name, (config, _) in COMPONENTS.items():
        node = config["node_id"]
        observer.topic(f"printmesh/{node}/{name}/status", timeout=30, where=lambda d: d.get("state") == "online")
    time.sleep(3.0)  # the first announce of each (on connect, and once its entities are known) is over
    announced = configs_by_component(observer.messages)
    assert all(announced.values()), f"a component announced nothing: {announced}"

    mark = observer.mark()
    start = time.monotonic()
    for i in range(1000):
        observer.publish("homeassistant/status", "online")
        if i % 100 == 99:
            time.sleep(max(0.0, start + (i + 1) / 1000 - time.monotonic()))
    assert time.monotonic() - start < 1.5, "the births took too long to send"
    time.sleep(8.0)  # quiet (1 s) after the last birth, longest (5 s) after the first, and margin

    with observer.cond:
        after = list(observer.messages[mark:])
    births = sum(1 for m in after if m.topic == "homeassistant/status")
    assert births == 1000
    again = configs_by_component(after)
    for name in COMPONENTS:
        assert set(again[name]) == set(announced[name]), f"{name} did not re-announce every entity once"
        repeats = {t: n for t, n in again[name].items() if n != 1}
        assert not repeats, f"{name} re-announced more than once per burst: {repeats}"
    for name, agent in agents.items():
        assert agent.proc.poll() is None, f"{name} died:\n{agent.log()[-2000:]}"
        assert agent.log().count("Home Assistant came online") == 1, agent.log()[-2000:]


# ------------------------------------------------------------------ the coordinator and a burst
def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH (MQTT 3.1.1): the burst is written raw, far faster than a client library."""
    raw = topic.encode()
    body = struct.pack("!H", len(raw)) + raw + payload
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return b"\x30" + bytes(length) + body


def burst(broker: LocalBroker, count: int) -> None:
    with socket.create_connection((broker.host, broker.port)) as sock:
        cid = b"flood-test"
        body = struct.pack("!H", 4) + b"MQTT" + bytes([4, 0x02]) + struct.pack("!H", 60) + struct.pack("!H", len(cid))
        sock.sendall(b"\x10" + bytes([len(body) + len(cid)]) + body + cid)
        assert sock.recv(4)[:1] == b"\x20"
        status = json.dumps({"ts": 1.0, "state": "online", "component": "coordinator", "version": "x"}).encode()
        event = json.dumps({"ts": 1.0, "event": "ZChange", "payload": {"new": 1}, "source": "octoprint"}).encode()
        packets = []
        for i in range(count):
            kind = i % 4
            if kind < 2:
                packets.append(_packet(f"printmesh/fake{i}/coordinator/status", status))
            elif kind == 2:
                hold = {"ts": 1.0, "phase": "idle", "holder": f"fake{i}/coordinator"}
                packets.append(_packet("printmesh/p1/printer/hold", json.dumps(hold).encode()))
            else:
                packets.append(_packet("printmesh/p1/printer/event", event))
            if len(packets) == 1000:
                sock.sendall(b"".join(packets))
                packets = []
        sock.sendall(b"".join(packets) + b"\xe0\x00")


def answered(watch: Observer, agent: Any, round_: int, limit: float = 180.0) -> dict[str, Any]:
    """The coordinator's answer to an abort for an unknown printer, sent after the burst.

    mosquitto drops what it cannot queue for a slow subscriber (``max_queued_messages``, 1000 by
    default: "Outgoing messages are being dropped for client printmesh-co-coordinator"), and a
    request can be among what it drops while the coordinator still reads the burst (seen here
    about one round in ten). So the test does what a requester does when no answer comes: it
    asks again, with a new id, every 5 s, and only fails if none is answered within ``limit``.
    """
    mark, deadline, ids = watch.mark(), time.monotonic() + limit, []
    while True:
        ids.append(f"x{round_}-{len(ids)}")
        watch.publish("printmesh/co/coordinator/cmd/abort", json.dumps({"id": ids[-1], "printer": "nope"}))
        try:
            answer: dict[str, Any] = watch.topic(
                "printmesh/co/coordinator/res/abort", timeout=5, after=mark, where=lambda d: d.get("id") in ids
            )
        except AssertionError:
            assert agent.proc.poll() is None, agent.log()[-3000:]
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer to any of {ids}\n{agent.log()[-3000:]}") from None
            continue
        return answer


def test_the_coordinator_survives_a_burst_of_unique_fake_statuses_with_bounded_memory(broker, run_agent, tmp_path):
    agent = run_agent("coordinator", coordinator_config("co", tmp_path / "captures", [printer_entry("p1")]))
    rt = make_runtime(broker, "flood-watch")
    watch = Observer(rt)
    rt.subscribe("printmesh/co/coordinator/#", watch._record, qos=1)
    rt.start()
    try:
        assert rt.wait_connected(5)
        watch.topic("printmesh/co/coordinator/status", timeout=30, where=lambda d: d.get("state") == "online")
        time.sleep(3.0)
        baseline = _rss_kb(agent.proc.pid)
        for round_ in range(2):
            burst(broker, 100_000)
            # still serving, once it has read the burst: an abort for an unknown printer is answered
            answer = answered(watch, agent, round_)
            assert answer["ok"] is False and answer["error"]["code"] == "unknown_printer"
            time.sleep(2.0)
            assert agent.proc.poll() is None, agent.log()[-3000:]
            after = _rss_kb(agent.proc.pid)
            assert after <= baseline * 1.10, f"RSS {baseline} kB before the bursts, {after} kB after {round_ + 1}"
        statuses = watch.on("printmesh/co/coordinator/status")
        assert json.loads(statuses[-1].payload)["state"] == "online"
        assert "Traceback" not in agent.log()
    finally:
        rt.stop()
