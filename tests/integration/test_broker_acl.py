"""``printmesh broker-config``'s files on a real mosquitto: who may connect, read and write what.

mosquitto drops an unauthorised publish silently under MQTT 3.1.1 and refuses it with a
reason code under MQTT 5, so every "cannot" below is checked both ways: a subscriber that
may read the topic sees nothing before a sentinel the rightful owner publishes afterwards,
and ``mosquitto_pub -V mqttv5`` reports "Not authorized".
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from acl_support import AclBroker, acl_broker, generate
from conftest import PRINTMESH, Observer

from printmesh_devkit.passwords import hash_password, verify_password

MESH = {
    "nodes": {
        "pi": {"components": ["host", "camera", "printer"]},
        "box": {"components": ["sensors"]},
        "srv": {
            "components": ["coordinator"],
            "printers": [{"node": "pi", "cameras": [{"node": "pi", "camera": "bed"}]}],
        },
        "other": {"components": ["printer"]},
    },
    "home_assistant": {"buttons": ["pi/camera/bed", "pi/printer/pause"]},
}
USERS = ["pi-host", "pi-camera", "pi-printer", "box-sensors", "srv-coordinator", "other-printer", "dashboard",
         "homeassistant"]  # fmt: skip
PI = "printmesh/pi/printer"


@pytest.fixture(scope="module")
def acl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    with acl_broker(tmp_path_factory.mktemp("acl"), MESH) as b:
        yield b


def nothing_but_the_sentinel(acl: AclBroker, watcher: Observer, owner: str, attacks: list[tuple[str, str]],
                             sentinel_topic: str) -> None:  # fmt: skip
    """Send every attack (3.1.1, 5 and mosquitto_pub), then a sentinel from ``owner``: only it arrives."""
    mark = watcher.mark()
    for user, topic in attacks:
        for protocol in ("3.1.1", "5"):
            rt, ok = acl.connect(user, protocol=protocol)
            assert ok, acl.broker.log_tail()
            rt.publish_absolute(topic, f"fake from {user}", qos=1, retain=True)
            rt.stop()
        assert "Not authorized" in acl.pub(user, topic, f"fake from {user}"), (user, topic)
    rt, ok = acl.connect(owner)
    assert ok
    rt.publish_absolute(sentinel_topic, b"sentinel", qos=1)
    watcher.wait_for(lambda m: m.payload == b"sentinel", after=mark)
    rt.stop()
    fakes = [(m.topic, m.payload) for m in watcher.messages[mark:] if m.payload.startswith(b"fake")]
    assert not fakes, fakes
    denied = [line for line in acl.broker.log_path.read_text().splitlines() if "Denied PUBLISH" in line]
    assert all(any(f"'{topic}'" in line for line in denied) for _, topic in attacks), "each denial is in the log"


def test_our_hashes_are_mosquittos(tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "alice", "s3cret"], check=True, capture_output=True)
    entry = pw.read_text().strip().split(":", 1)[1]
    assert entry.startswith("$7$101$") and verify_password("s3cret", entry) and not verify_password("s3creT", entry)
    assert verify_password("pässword", hash_password("pässword"))


def test_every_account_connects_and_anonymous_or_wrong_passwords_are_refused(acl):
    for user in USERS:
        rt, ok = acl.connect(user)
        rt.stop()
        assert ok, (user, acl.broker.log_tail())
    for protocol in ("5", "3.1.1"):
        for user, password in ((None, None), ("pi-printer", "wrong"), ("nobody", "x"), ("pi-printer", "")):
            rt, ok = acl.connect(user, password, protocol=protocol, wait=1.5)
            rt.stop()
            assert not ok, (user, password, protocol)
    mode = {p.name: p.stat().st_mode & 0o777 for p in acl.secrets.iterdir()}
    assert set(mode) == set(USERS) and set(mode.values()) == {0o600} and acl.secrets.stat().st_mode & 0o777 == 0o700
    assert (acl.out / "passwd").stat().st_mode & 0o777 == 0o600
    assert "allow_anonymous false" in (acl.out / "mosquitto.conf").read_text()


def test_a_sensor_agent_can_neither_command_a_printer_nor_fake_its_held_or_status(acl):
    watcher = acl.observer("pi-printer", f"{PI}/#")  # the bridge itself: it reads its commands
    coordinator = acl.observer("srv-coordinator", f"{PI}/#", f"$share/printmesh/{PI}/held")
    targets = [f"{PI}/cmd/hold", f"{PI}/cmd/move", f"{PI}/cmd/release", f"{PI}/held", f"{PI}/status", f"{PI}/event",
               "printmesh/srv/coordinator/status"]  # fmt: skip
    attacks = [("box-sensors", t) for t in targets]
    nothing_but_the_sentinel(acl, watcher, "pi-printer", attacks, f"{PI}/held")
    coordinator.wait_for(lambda m: m.payload == b"sentinel")
    assert not [m for m in coordinator.messages if m.payload.startswith(b"fake")]
    late = acl.observer("dashboard", "printmesh/#")  # nothing fake was retained either
    rt, _ = acl.connect("pi-printer")
    rt.publish_absolute(f"{PI}/state", b"sentinel", qos=1)
    late.wait_for(lambda m: m.payload == b"sentinel")
    rt.stop()
    assert not [m for m in late.messages if m.payload.startswith(b"fake")]
    for obs in (watcher, coordinator, late):
        obs.runtime.stop()


def test_the_read_only_user_reads_everything_and_commands_nothing(acl):
    watcher = acl.observer("dashboard", "printmesh/#", "homeassistant/#")
    attacks = [("dashboard", t) for t in (f"{PI}/cmd/pause", f"{PI}/cmd/hold", "printmesh/pi/camera/bed/press",
                                         "printmesh/pi/host/cmd/refresh", "printmesh/srv/coordinator/cmd/abort",
                                         "homeassistant/button/printmesh_pi_printer/x/config")]  # fmt: skip
    nothing_but_the_sentinel(acl, watcher, "pi-printer", attacks, f"{PI}/state")
    watcher.runtime.stop()


def test_a_coordinator_commands_only_its_printers_and_cameras(acl):
    mine = acl.observer("pi-printer", f"{PI}/#")
    others = acl.observer("other-printer", "printmesh/other/printer/#")
    camera = acl.observer("pi-camera", "printmesh/pi/camera/#")
    targets = ["printmesh/other/printer/cmd/hold", "printmesh/other/printer/cmd/move", f"{PI}/cmd/pause",
               f"{PI}/cmd/cancel", f"{PI}/held", f"{PI}/status"]  # fmt: skip
    attacks = [("srv-coordinator", t) for t in targets]
    nothing_but_the_sentinel(acl, others, "other-printer", attacks, "printmesh/other/printer/state")
    assert "Not authorized" not in acl.pub("srv-coordinator", f"{PI}/cmd/hold", "allowed")
    assert "Not authorized" not in acl.pub("srv-coordinator", "printmesh/pi/camera/cmd/capture", "allowed")
    mine.wait_for(lambda m: m.topic == f"{PI}/cmd/hold" and m.payload == b"allowed")
    camera.wait_for(lambda m: m.topic == "printmesh/pi/camera/cmd/capture" and m.payload == b"allowed")
    assert not [m for m in mine.messages if m.payload.startswith(b"fake")]
    for obs in (mine, others, camera):
        obs.runtime.stop()


def test_home_assistant_presses_only_its_buttons_and_discovery_is_the_announcers(acl):
    watcher = acl.observer("dashboard", "printmesh/#", "homeassistant/#")
    assert "Not authorized" not in acl.pub("homeassistant", "printmesh/pi/camera/bed/press", "PRESS")
    assert "Not authorized" not in acl.pub("homeassistant", f"{PI}/cmd/pause", '{"id": "ha"}')
    assert "Not authorized" not in acl.pub("box-sensors", "homeassistant/sensor/printmesh_box_sensors/t/config", "{}")
    watcher.wait_for(lambda m: m.topic == "homeassistant/sensor/printmesh_box_sensors/t/config")
    attacks = [("homeassistant", f"{PI}/cmd/hold"), ("homeassistant", "printmesh/pi/host/cmd/refresh"),
               ("homeassistant", "homeassistant/sensor/printmesh_pi_printer/x/config"),
               ("box-sensors", "homeassistant/button/printmesh_pi_printer/printer_pause/config"),
               ("box-sensors", "homeassistant/status")]  # fmt: skip
    nothing_but_the_sentinel(acl, watcher, "pi-host", attacks, "homeassistant/sensor/printmesh_pi_host/s/config")
    watcher.runtime.stop()


def test_answers_reach_only_their_requester_and_only_from_the_component_asked(acl):
    mine = acl.observer("srv-coordinator", "printmesh/reply/srv-coordinator/#")
    spy = acl.observer("dashboard", "printmesh/#")
    nosy = acl.observer("box-sensors", "printmesh/reply/srv-coordinator/#")  # refused at subscribe
    # a sensor agent cannot fake the printer's or the camera's answers to the coordinator
    attacks = [("box-sensors", "printmesh/reply/srv-coordinator/pi/printer"),
               ("pi-camera", "printmesh/reply/srv-coordinator/pi/printer")]  # fmt: skip
    nothing_but_the_sentinel(acl, mine, "pi-printer", attacks, "printmesh/reply/srv-coordinator/pi/printer")
    assert not [m for m in spy.messages if "/reply/" in m.topic] and not nosy.messages
    for obs in (mine, spy, nosy):
        obs.runtime.stop()


def test_generator_errors_name_the_key(tmp_path, capsys):
    bad = {"nodes": {"srv": {"components": ["coordinator"], "printers": [{"node": "ghost"}]}}}
    with pytest.raises(AssertionError):
        generate(tmp_path / "a", bad)
    assert "nodes.srv: coordinator printer 'ghost' is not a printer node of the mesh" in capsys.readouterr().err
    with pytest.raises(AssertionError):
        generate(
            tmp_path / "b", {"nodes": {"pi": {"components": ["host"]}}, "home_assistant": {"buttons": ["pi/camera/x"]}}
        )
    assert "home_assistant.buttons: 'pi/camera/x': no camera component on node 'pi'" in capsys.readouterr().err
    with pytest.raises(AssertionError):
        generate(tmp_path / "c", {"nodes": {"reply": {"components": ["host"]}}})
    assert "node id 'reply' is reserved" in capsys.readouterr().err
    (tmp_path / "pi.yaml").write_text("node_id: octopi\n")
    with pytest.raises(AssertionError):
        generate(tmp_path / "d", {"nodes": {"pi": {"components": ["host"], "config": str(tmp_path / "pi.yaml")}}})
    assert "nodes.pi.config: " in capsys.readouterr().err  # the file names another node


def test_passwords_survive_a_second_run_unless_rotated(tmp_path):
    from printmesh_devkit.broker_config import main

    mesh = {"nodes": {"pi": {"components": ["host"]}}, "dashboard": None}
    out, secrets = generate(tmp_path, mesh)
    first = (secrets / "pi-host").read_text()
    assert main([str(tmp_path / "mesh.yaml"), "--out", str(out), "--secrets", str(secrets)]) == 0
    assert (secrets / "pi-host").read_text() == first
    assert main([str(tmp_path / "mesh.yaml"), "--out", str(out), "--secrets", str(secrets), "--rotate", "pi-host"]) == 0
    second = (secrets / "pi-host").read_text()
    assert second != first and len(second.strip()) >= 32
    entry = (out / "passwd").read_text().strip().split(":", 1)[1]
    assert verify_password(second.strip(), entry) and Path(out / "acl").read_text().count("\nuser ") == 1


def test_the_shipped_broker_files_are_the_generators_output_for_the_shipped_mesh(tmp_path, monkeypatch):
    """deploy/mosquitto/{acl,mosquitto.conf} are what `printmesh broker-config deploy/mesh.yaml` writes."""
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    r = subprocess.run([*PRINTMESH, "broker-config", "deploy/mesh.yaml", "--out", str(tmp_path / "out"),
                        "--secrets", str(tmp_path / "secrets")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "octopi-coordinator" in r.stdout and str(tmp_path / "secrets" / "homeassistant") in r.stdout
    for name in ("acl", "mosquitto.conf"):
        assert (tmp_path / "out" / name).read_text() == (repo / "deploy/mosquitto" / name).read_text(), name
    conf = (repo / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf
    insecure = (repo / "deploy/mosquitto/INSECURE-anonymous.conf").read_text()
    assert insecure.startswith("# INSECURE: NO AUTHENTICATION") and "allow_anonymous true" in insecure
