"""A trusting bridge in a real OctoPrint, on a broker without accounts: what the bridge itself
decides, with no ACL behind it.

The bridge trusts the coordinator ``server``. On an open broker anyone can still send it
commands (the ACL's job: test_trusted_holders.py), but no one can make it arm under another
holder's name or follow another holder's presence: a fake coordinator's ``offline`` releases
nothing, while the trusted one's does, through the subscription the bridge made at start
(not one a request asked for); and a trusted coordinator last seen offline cannot arm.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Observer, make_runtime
from octoprint_harness import start_octoprint

from printmesh_devkit.broker import LocalBroker

NODE = "trustprinter"
BASE = f"printmesh/{NODE}/printer"
TRUSTED, FAKE = "server", "evil"


def status(node: str) -> str:
    return f"printmesh/{node}/coordinator/status"


def test_only_the_trusted_coordinators_name_arms_and_only_its_will_disarms(broker: LocalBroker, observer: Observer,
                                                                             tmp_path: Path):  # fmt: skip
    settings = {"node_id": NODE, "commands": {"trusted_holders": [TRUSTED]},
                "mqtt": {"host": "127.0.0.1", "port": broker.port}}  # fmt: skip
    octoprint = start_octoprint(tmp_path / "octoprint", settings)
    rt = make_runtime(broker, "poser")
    try:
        octoprint.wait_operational()
        observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online", timeout=30)
        rt.start()
        assert rt.wait_connected(5)

        def hold(rid: str, holder: str | None) -> dict:
            mark = observer.mark()
            body = {"id": rid, "plan": {"every": 5}, **({"holder": holder} if holder else {})}
            rt.publish_absolute(f"{BASE}/cmd/hold", json.dumps(body), qos=1)
            return observer.topic(f"{BASE}/res/hold", after=mark, where=lambda d: d["id"] == rid)

        for node in (TRUSTED, FAKE):
            rt.publish_absolute(status(node), '{"state": "online"}', qos=1, retain=True)
        refused = hold("fake", f"{FAKE}/coordinator")
        assert refused["error"]["code"] == "untrusted_holder", refused
        assert hold("nobody", None)["error"]["code"] == "untrusted_holder"
        mark = observer.mark()
        assert hold("trusted", f"{TRUSTED}/coordinator")["ok"]
        armed = observer.topic(f"{BASE}/hold", after=mark, where=lambda d: d["armed"] is not None)
        assert armed["holder"] == f"{TRUSTED}/coordinator"

        mark = observer.mark()
        rt.publish_absolute(status(FAKE), "offline", qos=1, retain=True)  # a fake coordinator's will
        rt.publish_absolute(f"printmesh/{FAKE}/coordinator/sentinel", "x", qos=1)
        observer.wait_for(lambda m: m.topic.endswith("/sentinel"), after=mark)
        rt.publish_absolute(status(TRUSTED), '{"state": "offline", "reason": "connection lost"}', qos=1, retain=True)
        disarmed = observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "hold_disarmed")
        assert disarmed["payload"] == {"reason": "holder_offline", "holder": f"{TRUSTED}/coordinator"}
        events = [json.loads(m.payload) for m in observer.messages[mark:] if m.topic == f"{BASE}/event"]
        assert [e["payload"]["holder"] for e in events if e["event"] == "hold_disarmed"] == [f"{TRUSTED}/coordinator"]

        offline = hold("while-offline", f"{TRUSTED}/coordinator")
        assert offline["error"]["code"] == "invalid_request" and "offline" in offline["error"]["message"], offline
        rt.publish_absolute(status(TRUSTED), '{"state": "online"}', qos=1, retain=True)
        for _ in range(50):  # back online: it may arm again (its status arrives asynchronously)
            answer = hold("back", f"{TRUSTED}/coordinator")
            if answer["ok"]:
                break
        assert answer["ok"], answer
    finally:
        rt.stop()
        octoprint.stop()
