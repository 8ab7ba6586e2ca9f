"""Every agent kind over TLS with its own account, on a mosquitto run with the generated files.

The test makes its own CA and certificates (openssl), writes the mesh from the agents' own
config files (the coordinator's printers and cameras are read from its config), and starts
``printmesh host``, ``sensors``, ``camera`` and ``coordinator`` as processes that connect to
the TLS listener with ``PRINTMESH_MQTT__USERNAME`` and ``PRINTMESH_MQTT__PASSWORD_FILE``.
Each one goes online, publishes what it publishes, and is never refused a subscription or a
publish; no password shows in any log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from acl_support import AclBroker, acl_broker, make_pki

from printmesh_devkit.broker import LocalBroker

CAMERA = {"node_id": "pi", "camera": {"cameras": [
    {"name": "bed", "source": {"type": "synthetic", "fps": 0}, "preview": {"interval": 0}}]}}  # fmt: skip
COORDINATOR = {"node_id": "srv", "coordinator": {"printers": [
    {"node": "pi", "plan": {"every": 5}, "cameras": [{"node": "pi", "camera": "bed"}]}]}}  # fmt: skip
SENSORS = {"node_id": "box", "sensors": {"sensors": [{"name": "enclosure", "driver": "simulated", "interval": 1}]}}
HOST = {"node_id": "pi", "host": {"interval": 1}}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("configs")
    out = {}
    for name, cfg in (("camera", CAMERA), ("coordinator", COORDINATOR), ("sensors", SENSORS), ("host", HOST)):
        if name == "coordinator":
            cfg = {**cfg, "coordinator": {**cfg["coordinator"], "captures_dir": str(folder / "captures")}}
        out[name] = folder / f"{name}.yaml"
        out[name].write_text(yaml.safe_dump(cfg))
    return out


@pytest.fixture(scope="module")
def acl(tmp_path_factory: pytest.TempPathFactory, pki: Path, configs: dict[str, Path]) -> Iterator[AclBroker]:
    mesh: dict[str, Any] = {
        "nodes": {
            "pi": {"components": ["host", "camera", "printer"], "config": str(configs["camera"])},
            "box": {"components": ["sensors"]},
            "srv": {"components": ["coordinator"], "config": str(configs["coordinator"])},
        },
        "home_assistant": {"buttons": ["pi/camera/bed"]},
    }
    tls = {"cafile": str(pki / "ca.pem"), "certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key")}
    with acl_broker(tmp_path_factory.mktemp("acl"), mesh, tls=tls) as b:
        yield b


@pytest.fixture
def broker(acl: AclBroker) -> LocalBroker:
    """conftest's run_agent starts agents against this broker (its plain port, overridden below)."""
    return acl.broker


def tls_env(acl: AclBroker, pki: Path, user: str) -> dict[str, str]:
    assert acl.tls_port is not None
    return {**acl.env(user), "PRINTMESH_MQTT__PORT": str(acl.tls_port), "PRINTMESH_MQTT__TLS__ENABLED": "true",
            "PRINTMESH_MQTT__TLS__CA_FILE": str(pki / "ca.pem")}  # fmt: skip


def test_each_agent_kind_connects_over_tls_with_its_own_account(acl, pki, configs, run_agent):
    watch = acl.observer("dashboard", "printmesh/#", "homeassistant/#")
    agents = {}
    for kind, user in (("host", "pi-host"), ("sensors", "box-sensors"), ("camera", "pi-camera"),
                       ("coordinator", "srv-coordinator")):  # fmt: skip
        agents[kind] = run_agent(kind, yaml.safe_load(configs[kind].read_text()), env=tls_env(acl, pki, user))
    for topic in ("pi/host", "box/sensors", "pi/camera", "srv/coordinator"):
        got = watch.wait_for(lambda m, t=topic: m.topic == f"printmesh/{t}/status" and b'"online"' in m.payload, 30)
        assert got.retain
    watch.wait_for(lambda m: m.topic == "printmesh/pi/host/state")
    watch.wait_for(lambda m: m.topic == "printmesh/box/sensors/enclosure/state")
    watch.wait_for(lambda m: m.topic == "printmesh/pi/camera/bed/availability")
    for ha_node in ("printmesh_pi_host", "printmesh_box_sensors", "printmesh_pi_camera"):
        watch.wait_for(lambda m, n=ha_node: m.topic.startswith("homeassistant/") and f"/{n}/" in m.topic)
    # Home Assistant's button, pressed with its own account, makes a capture
    assert "Not authorized" not in acl.pub("homeassistant", "printmesh/pi/camera/bed/press", "PRESS")
    watch.wait_for(lambda m: m.topic.startswith("printmesh/pi/camera/bed/capture/"), timeout=20)
    time.sleep(1.0)
    for kind, agent in agents.items():
        assert agent.stop() == 0, agent.log()
        log = agent.log()
        assert "refused" not in log and "Traceback" not in log, (kind, log[-2000:])
        user = {"host": "pi-host", "sensors": "box-sensors", "camera": "pi-camera", "coordinator": "srv-coordinator"}
        assert acl.password(user[kind]) not in log
    broker_log = acl.broker.log_path.read_text()
    assert "Denied" not in broker_log and "not authorised" not in broker_log.lower(), broker_log[-3000:]
    for user in ("pi-host", "box-sensors", "pi-camera", "srv-coordinator"):
        assert acl.password(user) not in broker_log and f"u'{user}'" in broker_log  # each used its own account
    watch.runtime.stop()


def test_a_client_without_the_ca_or_on_the_plain_port_without_tls_settings(acl, pki):
    from printmesh_core.config import MqttConfig
    from printmesh_core.mqtt import MqttRuntime

    cfg = acl.config("pi-host").model_copy(update={"port": acl.tls_port})
    rt = MqttRuntime(cfg, "printmesh", "plain-to-tls")  # plain MQTT to the TLS port: no connection
    rt.start()
    assert not rt.wait_connected(2)
    rt.stop()
    wrong_ca = MqttConfig.model_validate({**cfg.model_dump(), "password": acl.password("pi-host"),
                                          "tls": {"enabled": True, "ca_file": str(pki / "client.pem")}})  # fmt: skip
    rt = MqttRuntime(wrong_ca, "printmesh", "wrong-ca")
    rt.start()
    assert not rt.wait_connected(2)
    rt.stop()
