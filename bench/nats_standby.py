"""A NATS node dies: would a connection opened beforehand to another node (a hot standby) fail over faster?

bench/nats_failover.py measured that a printmesh client whose node is killed has its CONNACK
from a surviving node 4-8 s later when the dead node led the ``$MQTT_sess`` stream (every
MQTT CONNECT on any node reads that stream, and Raft elects its new leader 4-9 s after the
loss). The obvious way around it is a second connection kept open to another node, promoted
when the first one's node dies. This measures what such a standby connection can do right
after the kill, against a fresh CONNECT, on a fresh 3-node cluster per round
(tests/nats_cluster.py), killing the ``$MQTT_sess`` leader with SIGKILL:

* a SUBSCRIBE at QoS 1 and one at QoS 0 (a promoted standby must subscribe to its command
  topics), their SUBACK time and reason;
* a retained QoS 1 PUBLISH (the standby's ``online`` status) and a plain QoS 1 PUBLISH, their
  PUBACK time, and when a subscriber on the third node receives them;
* a new connection's CONNACK on the same surviving node.

Times are seconds after the kill; ``-`` means no answer within the 15 s watched.

    .venv/bin/python bench/nats_standby.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from nats_cluster import NatsCluster

WATCH = 15.0


class Probe:
    """One paho connection that records when each answer came."""

    def __init__(self, client_id: str, port: int) -> None:
        self.seen: dict[str, tuple[float, str]] = {}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        c.on_connect = lambda *a: self._mark("connack")
        c.on_subscribe = lambda _c, _u, mid, rc, _p: self._mark(f"suback{mid}", ",".join(str(r) for r in rc))
        c.on_publish = lambda _c, _u, mid, _rc, _p: self._mark(f"puback{mid}")
        c.on_message = lambda _c, _u, m: self._mark(f"got:{m.topic}")
        c.connect("127.0.0.1", port, 5)
        c.loop_start()
        self.client = c

    def _mark(self, key: str, detail: str = "") -> None:
        self.seen.setdefault(key, (time.monotonic(), detail))

    def at(self, key: str, t0: float) -> str:
        if key not in self.seen:
            return "-"
        when, detail = self.seen[key]
        return f"{when - t0:.2f}" + (f" ({detail})" if detail and "Granted" not in detail else "")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def one_round() -> dict[str, Any]:
    with NatsCluster(Path(tempfile.mkdtemp(prefix="bench-nats-standby-"))) as cluster:
        leaders = cluster.nodes[0].leaders()
        victim = next(n for n in cluster.nodes if n.name == leaders.get("$MQTT_sess"))
        standby_node, other = (n for n in cluster.nodes if n is not victim)
        standby, receiver = Probe("standby", standby_node.port), Probe("receiver", other.port)
        receiver.client.subscribe("bench/#", 1)
        time.sleep(2)  # both connected, the receiver's subscription in place
        t0 = time.monotonic()
        victim.kill()
        sub1 = standby.client.subscribe("cmd/#", 1)[1]
        sub0 = standby.client.subscribe("evt/#", 0)[1]
        retained = standby.client.publish("bench/status", b"online", qos=1, retain=True).mid
        plain = standby.client.publish("bench/plain", b"x", qos=1).mid
        fresh = Probe("newcomer", standby_node.port)
        time.sleep(WATCH)
        row = {
            "led": " ".join(sorted(k for k, v in leaders.items() if v == victim.name)),
            "sub q1": standby.at(f"suback{sub1}", t0),
            "sub q0": standby.at(f"suback{sub0}", t0),
            "retained": standby.at(f"puback{retained}", t0),
            "plain": standby.at(f"puback{plain}", t0),
            "delivered": receiver.at("got:bench/plain", t0),
            "new CONNACK": fresh.at("connack", t0),
        }
        for probe in (standby, receiver, fresh):
            probe.close()
        return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    keys = ["led", "sub q1", "sub q0", "retained", "plain", "delivered", "new CONNACK"]
    print("| round | killed node led | standby SUBACK QoS 1, s | SUBACK QoS 0, s | PUBACK retained, s "
          "| PUBACK plain, s | plain delivered, s | new CONNECT's CONNACK, s |")  # fmt: skip
    print("|---" * (len(keys) + 1) + "|")
    for n in range(args.rounds):
        row = one_round()
        print(f"| {n + 1} | " + " | ".join(str(row[k]) for k in keys) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
