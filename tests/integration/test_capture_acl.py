"""A full capture print under the generated ACL, every party over TLS with its own account.

test_capture_e2e.py's rig and checks, unchanged, with its fixtures replaced: the broker runs
``printmesh broker-config``'s files plus a TLS listener (a CA made here); the bridge inside a
real OctoPrint, the camera agent and the coordinator each connect over TLS with their own
user and password; the observer is the read-only dashboard user. The coordinator's rights
come from its own config file, the one it runs with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from acl_support import AclBroker, acl_broker, make_pki
from conftest import AgentProcess, Observer
from test_capture_e2e import CAMS, COORD, PLANNED, PRINTER, check_serial_log, coordinator_config, layer_files, run_print
from test_capture_e2e import rig as rig  # the fixture, run against the fixtures below

from printmesh_devkit.broker import LocalBroker


@pytest.fixture
def acl(tmp_path: Path) -> Iterator[AclBroker]:
    pki = make_pki(tmp_path / "pki")
    coordinator_file = tmp_path / "coordinator.yaml"
    coordinator_file.write_text(yaml.safe_dump(coordinator_config(tmp_path / "captures")))
    mesh = {
        "nodes": {
            PRINTER: {"components": ["printer"]},
            CAMS: {"components": ["camera"]},
            COORD: {"components": ["coordinator"], "config": str(coordinator_file)},
        },
        "home_assistant": None,
    }
    tls = {"cafile": str(pki / "ca.pem"), "certfile": str(pki / "server.pem"), "keyfile": str(pki / "server.key")}
    with acl_broker(tmp_path / "acl", mesh, tls=tls) as b:
        b.pki = pki
        yield b


def tls(acl: AclBroker) -> dict[str, Any]:
    assert acl.pki is not None
    return {"enabled": True, "ca_file": str(acl.pki / "ca.pem")}


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
    """conftest's, with the agent's own account and the TLS listener."""

    def start(component: str, config: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> AgentProcess:
        config = {**(config or {}), "mqtt": {"tls": tls(acl)}}
        user = f"{config['node_id']}-{component}"
        return run_agent(component, config, {**acl.env(user), "PRINTMESH_MQTT__PORT": str(acl.tls_port), **(env or {})})

    return start


def test_a_full_capture_print_under_the_acl_with_every_party_over_tls(rig, acl):
    mqtt = {"host": "127.0.0.1", "port": acl.tls_port, "username": f"{PRINTER}-printer",
            "password": acl.password(f"{PRINTER}-printer"), "tls": tls(acl)}  # fmt: skip
    r = rig(bridge={"mqtt": mqtt})
    data, summary = run_print(r)
    assert summary.outcome == "done" and summary.layers_captured == PLANNED and not summary.failures, summary
    assert summary.images == 9 * len(PLANNED)
    layers = layer_files(r, summary)
    assert sorted(layers) == PLANNED and all(m.complete and len(m.images) == 9 for m in layers.values())
    check_serial_log(r.octoprint.serial_log(), data)
    log = acl.broker.log_path.read_text()
    assert "Denied" not in log, [line for line in log.splitlines() if "Denied" in line][:10]
    for user in (f"{PRINTER}-printer", f"{CAMS}-camera", f"{COORD}-coordinator"):
        assert f"u'{user}'" in log and acl.password(user) not in log
    assert acl.password(f"{PRINTER}-printer") not in r.octoprint.log()
