"""Issue 12's attacks on a capture print, under the generated ACL, with a trusting bridge.

A real OctoPrint with the bridge (``commands.trusted_holders: [the coordinator]``), the camera
agent and the coordinator, each with its own account on ``printmesh broker-config``'s files,
print test_capture_e2e's 20-layer file with a 3x3 grid every 5 layers. While the first grid
runs, every attack of the issue is tried: by an anonymous client, a wrong password, a sensor
agent's account, a coordinator's account configured for no printer (the "fake coordinator":
it may announce itself, it is a real account), the read-only dashboard and Home Assistant:

* pause and resume the print, ``hold now``, move the head, release (and disarm) the hold;
* abort the coordinator; fake the coordinator's ``offline`` status;
* announce a fake coordinator and arm a plan under its name;
* a hold naming an untrusted holder, from the one account the ACL lets command the printer
  (the bridge refuses it: ``untrusted_holder``);
* an MQTT 5 response topic reflecting the bridge's answer onto its own ``cmd/pause``.

Each publish is refused by the broker ("Not authorized"), or by the bridge with its error,
and the print proves nothing happened: every planned layer has its 9 images, the print never
paused, no extra hold, no release or disarm but the coordinator's own, the plan's holder
never changed, and OctoPrint's serial log shows no move but the grid's.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from acl_support import AclBroker, acl_broker
from conftest import AgentProcess, Observer
from printing import FAST, printable
from test_capture_e2e import (
    BASE,
    CAMS,
    COORD,
    FILE,
    PLANNED,
    PRINTER,
    check_serial_log,
    coordinator_config,
    layer_files,
)
from test_capture_e2e import rig as rig  # the fixture, run against the fixtures below

from printmesh_core.models.coordinator import JobSummary
from printmesh_devkit.broker import LocalBroker

ROGUE = "rogue"  # a node of the mesh: a sensor agent and a coordinator configured for no printer
COORD_BASE = f"printmesh/{COORD}/coordinator"
HOLDER = f"{COORD}/coordinator"
FAKE_HOLDER = f"{ROGUE}/coordinator"


@pytest.fixture
def acl(tmp_path: Path) -> Iterator[AclBroker]:
    coordinator_file = tmp_path / "coordinator.yaml"
    coordinator_file.write_text(yaml.safe_dump(coordinator_config(tmp_path / "captures", settle=0.5)))
    mesh = {
        "nodes": {
            PRINTER: {"components": ["printer"]},
            CAMS: {"components": ["camera"]},
            COORD: {"components": ["coordinator"], "config": str(coordinator_file)},
            ROGUE: {"components": ["sensors", "coordinator"], "printers": []},
        },
        "home_assistant": {"buttons": [f"{PRINTER}/printer/pause", f"{PRINTER}/printer/resume"]},
    }
    with acl_broker(tmp_path / "acl", mesh) as b:
        yield b


@pytest.fixture
def broker(acl: AclBroker) -> LocalBroker:
    return acl.broker


@pytest.fixture
def observer(acl: AclBroker) -> Iterator[Observer]:
    obs = acl.observer("dashboard", "printmesh/#", "homeassistant/#")
    yield obs
    obs.runtime.stop()


@pytest.fixture
def run_agent(run_agent: Callable[..., AgentProcess], acl: AclBroker) -> Callable[..., AgentProcess]:
    """conftest's, with the agent's own account."""

    def start(component: str, config: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> AgentProcess:
        config = config or {}
        return run_agent(component, config, {**acl.env(f"{config['node_id']}-{component}"), **(env or {})})

    return start


def anonymous_pub(acl: AclBroker, topic: str, payload: str, *auth: str) -> subprocess.CompletedProcess[str]:
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(acl.port), *auth, "-V", "mqttv5", "-q", "1", "-t", topic,
            "-m", payload]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=10)


def attacks() -> list[tuple[str, str, str]]:
    """(what, topic, payload) of every command and fake the issue lists; ids start with 'attack'."""
    hijack = {"id": "attack-hijack", "plan": {"layers": [6]}, "holder": FAKE_HOLDER}
    return [
        ("pause", f"{BASE}/cmd/pause", '{"id": "attack-pause"}'),
        ("resume", f"{BASE}/cmd/resume", '{"id": "attack-resume"}'),
        ("hold now", f"{BASE}/cmd/hold", '{"id": "attack-hold", "now": true}'),
        ("move", f"{BASE}/cmd/move", '{"id": "attack-move", "x": 10, "y": 10, "z": 30}'),
        ("release", f"{BASE}/cmd/release", '{"id": "attack-release", "disarm": true}'),
        ("abort", f"{COORD_BASE}/cmd/abort", '{"id": "attack-abort"}'),
        ("fake offline", f"{COORD_BASE}/status", '{"state": "offline", "attack": true}'),
        ("fake offline (text)", f"{COORD_BASE}/status", "offline"),
        ("hijack", f"{BASE}/cmd/hold", json.dumps(hijack)),
    ]


def attack(acl: AclBroker) -> list[str]:
    """Every attack from every account that is not the coordinator; returns what was not refused."""
    accepted: list[str] = []
    # a fake coordinator announces itself (its own status: the ACL allows that much) ...
    assert "Not authorized" not in acl.pub(f"{ROGUE}-coordinator", f"printmesh/{ROGUE}/coordinator/status",
                                           '{"state": "online"}', retain=True)  # fmt: skip
    for what, topic, payload in attacks():
        for user in (f"{ROGUE}-sensors", f"{ROGUE}-coordinator", "dashboard", "homeassistant"):
            if user == "homeassistant" and what in ("pause", "resume"):
                continue  # its buttons: the ACL gives it these two on purpose (and a hold refuses them)
            if "Not authorized" not in acl.pub(user, topic, payload):
                accepted.append(f"{user}: {what}")
        for auth in ((), ("-u", f"{PRINTER}-printer", "-P", "wrong")):
            r = anonymous_pub(acl, topic, payload, *auth)
            if r.returncode == 0 or "not authori" not in (r.stdout + r.stderr).lower():
                accepted.append(f"{auth[1] if auth else 'anonymous'}: {what}: {r.stdout}{r.stderr}")
    # ... and goes offline: its own will, which the bridge does not read
    acl.pub(f"{ROGUE}-coordinator", f"printmesh/{ROGUE}/coordinator/status", '{"state": "offline"}', retain=True)
    return accepted


def trusted_writer_attempts(acl: AclBroker) -> None:
    """From the coordinator's own account (the ACL lets it command the printer): a hold under a
    fake holder's name, and a request whose response topic is the bridge's own cmd/pause."""
    rt, ok = acl.connect(f"{COORD}-coordinator")
    assert ok, acl.broker.log_tail()
    fake = {"id": "untrusted", "plan": {"layers": [6, 7]}, "holder": FAKE_HOLDER}
    rt.publish_absolute(f"{BASE}/cmd/hold", json.dumps(fake), qos=1)
    rt.publish_absolute(f"{BASE}/cmd/hold", '{"id": "no-holder", "now": true}', qos=1)
    rt.publish_absolute(f"{BASE}/cmd/release", '{"id": "reflect", "hold_id": 999}', qos=1,
                        response_topic=f"{BASE}/cmd/pause", correlation_data=b"c")  # fmt: skip
    time.sleep(0.3)
    rt.stop()


def test_every_attack_of_issue_12_fails_and_the_capture_print_is_untouched(rig, acl):
    mqtt = {"host": "127.0.0.1", "port": acl.port, "username": f"{PRINTER}-printer",
            "password": acl.password(f"{PRINTER}-printer")}  # fmt: skip
    r = rig(bridge={"mqtt": mqtt, "commands": {"trusted_holders": [COORD]}}, settle=0.5)
    status = r.observer.topic(f"{BASE}/hold", where=lambda d: d["armed"] is not None)
    assert status["holder"] == HOLDER
    data = printable(FILE)
    r.octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    mark = r.observer.mark()
    r.octoprint.upload(f"{FILE}.gcode", data)
    # mid-grid: the first hold is held and its first image is in
    r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "held", timeout=90)
    r.observer.wait_for(lambda m: m.topic.startswith(f"printmesh/{CAMS}/camera/bed/capture/"), after=mark, timeout=30)
    accepted = attack(acl)
    trusted_writer_attempts(acl)
    attacked = time.time()
    assert not accepted, accepted

    r.observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=240)
    summary = JobSummary.model_validate(
        r.observer.topic(f"printmesh/{COORD}/coordinator/{PRINTER}/summary", after=mark, timeout=60)
    )
    messages = r.observer.messages[mark:]
    events = [json.loads(m.payload) for m in messages if m.topic == f"{BASE}/event"]
    released = [e for e in events if e["event"] == "released"]
    assert released and released[0]["ts"] > attacked, "the attacks ran while the first grid was held"

    # the bridge's own refusals, from the one account the ACL lets command it
    answers = {json.loads(m.payload)["id"]: json.loads(m.payload) for m in messages if "/printer/res/" in m.topic}
    assert answers["untrusted"]["error"]["code"] == "untrusted_holder", answers["untrusted"]
    assert answers["no-holder"]["error"]["code"] == "untrusted_holder", answers["no-holder"]
    assert answers["reflect"]["error"]["code"] == "response_topic_refused", answers["reflect"]
    assert not [i for i in answers if i.startswith("attack")], "no attack reached the bridge"
    assert not [m.topic for m in messages if b"attack" in m.payload], "no attack reached any reader"

    # the print: captured in full, never paused, held only by the plan, released only by its holder
    assert summary.outcome == "done" and summary.layers_captured == PLANNED and not summary.failures, summary
    assert summary.images == 9 * len(PLANNED)
    assert all(m.complete and len(m.images) == 9 for m in layer_files(r, summary).values())
    names = [e["event"] for e in events]
    assert not {"PrintPaused", "PrintResumed", "PrintCancelled"} & set(names), names
    disarmed = [e["payload"] for e in events if e["event"] == "hold_disarmed"]
    assert all(d["reason"].startswith("print ended") for d in disarmed), "disarmed only by the print's end"
    assert names.count("held") == len(PLANNED) and len(released) == len(PLANNED), names
    assert all(e["payload"]["reason"] == "requested" and e["payload"]["returned"] for e in released), released
    holders = {json.loads(m.payload)["holder"] for m in messages if m.topic == f"{BASE}/hold"}
    assert holders == {HOLDER}, holders
    coordinator = [json.loads(m.payload)["state"] for m in messages if m.topic == f"{COORD_BASE}/status"]
    assert "offline" not in coordinator, coordinator
    check_serial_log(r.octoprint.serial_log(), data)
    assert not [line for line in r.octoprint.serial_log().splitlines() if "X10 Y10" in line], "no attacker's move"

    log = acl.broker.log_path.read_text()
    denied = [line for line in log.splitlines() if "Denied PUBLISH" in line]
    for _, topic, _ in attacks():
        assert any(f"'{topic}'" in line for line in denied), topic
    assert acl.password(f"{PRINTER}-printer") not in r.octoprint.log()
    assert "no trusted coordinators" not in r.octoprint.log()
