"""A NATS node dies: QoS 1 against QoS 0 subscriptions, side by side in one run (issue 14 §2).

For each arm a fresh 3-node NATS cluster (tests/nats_cluster.py) gets three printmesh
runtimes, each on another node (``mqtt.hosts`` rotated), each with 10 subscriptions at the
arm's QoS (``mqtt.max_subscribe_qos``) and a retained presence. The node that leads the
``$MQTT_sess`` stream (the worst case: every MQTT CONNECT on any node reads it) is SIGKILLed;
what else it led (the meta layer, other streams) is printed. Measured: seconds until its
client has a CONNACK from another node, until that node lists it with its subscriptions
(``/connz``: restored), subscriptions the broker
refused (SUBACK 0x80, from the runtime's log), and how many of 9 QoS 1 messages (every
client to every client, sent right after the failover) arrive within 12 s, with their
latency.

    .venv/bin/python bench/nats_failover.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from nats_cluster import NatsCluster, NatsNode, rotated

from printmesh_core.config import MqttConfig
from printmesh_core.mqtt import MqttRuntime, Presence


class Refusals(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "refused a subscription" in record.getMessage():
            self.count += record.getMessage().count("Unspecified error") or 1


def subscribed(node: NatsNode, client: str) -> bool:
    conns = node.monitor(f"/connz?mqtt_client={client}").get("connections") or []
    return any(isinstance(c, dict) and c.get("subscriptions") for c in conns)  # type: ignore[union-attr]


def arm(qos: int) -> dict[str, object]:
    refusals = Refusals()
    logger = logging.getLogger("printmesh.mqtt")
    logger.addHandler(refusals)
    logger.setLevel(logging.ERROR)  # the refusals are logged at ERROR
    logger.propagate = False
    got: list[tuple[float, str]] = []
    with NatsCluster(Path(tempfile.mkdtemp(prefix="bench-nats-"))) as cluster:
        runtimes = []
        for i in range(3):
            nodes = rotated(cluster.nodes, i)
            cfg = MqttConfig(hosts=[n.address for n in nodes], protocol="3.1.1", max_subscribe_qos=qos)
            rt = MqttRuntime(cfg, "printmesh", f"bench-{i}", Presence(f"n{i}/x/status", "x", "bench"))
            for k in range(10):
                rt.subscribe(f"printmesh/n{i}/cmd/{k}", lambda m: got.append((time.monotonic(), m.topic)), qos=1)
            rt.start()
            assert rt.wait_connected(10)
            runtimes.append(rt)
        time.sleep(1)
        leaders = cluster.nodes[0].leaders()
        victim = next(i for i, n in enumerate(cluster.nodes) if n.name == leaders.get("$MQTT_sess"))
        led = sorted(k for k, v in leaders.items() if v == cluster.nodes[victim].name)
        survivors = [n for i, n in enumerate(cluster.nodes) if i != victim]
        killed = time.monotonic()
        cluster.nodes[victim].kill()
        rt = runtimes[victim]
        while rt.connected and time.monotonic() - killed < 5:
            time.sleep(0.002)
        back = rt.wait_connected(30)
        failover = time.monotonic() - killed if back else float("nan")
        restored = float("nan")
        while time.monotonic() - killed < 30:
            if any(subscribed(n, f"bench-{victim}") for n in survivors):
                restored = time.monotonic() - killed
                break
            time.sleep(0.01)
        sent = time.monotonic()
        for pub in runtimes:
            for i in range(3):
                pub.publish_absolute(f"printmesh/n{i}/cmd/0", b"x", qos=1)
        time.sleep(12)
        late = [t - sent for t, _ in got]
        for r in runtimes:
            r.stop(1)
    logger.removeHandler(refusals)
    return {
        "led": " ".join(led),
        "restored_s": restored,
        "failover_s": failover,
        "refused": refusals.count,
        "delivered": len(late),
        "max_latency_s": max(late) if late else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    print("| round | subscriptions | killed node led | CONNACK, s | subscribed, s | refused SUBSCRIBEs "
          "| delivered of 9 | slowest delivery, s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for n in range(args.rounds):
        for qos in (1, 0):  # interleaved: each round runs both arms
            r = arm(qos)
            print(f"| {n + 1} | QoS {qos} | {r['led']} | {r['failover_s']:.3f} | {r['restored_s']:.3f} "
                  f"| {r['refused']} | {r['delivered']} | {r['max_latency_s']:.3f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
