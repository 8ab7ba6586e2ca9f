"""`printmesh up`, the main job: embedded broker + installed agents + live view."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from printmesh_core.broker import free_port, port_open


@pytest.mark.parametrize("broker", ["mosquitto", "iotcore"])
def test_up_starts_a_broker_runs_the_host_agent_and_shows_messages(broker, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env["PRINTMESH_NODE_ID"] = "updemo"
    env["PRINTMESH_HOST__INTERVAL"] = "1"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "printmesh_core.cli",
            "up",
            "--broker",
            broker,
            "--broker-port",
            str(port),
            "--duration",
            "4",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"started {broker} on 127.0.0.1:{port}" in out
    assert "printmesh/updemo/host/status" in out and '"state":"online"' in out
    assert out.count("printmesh/updemo/host/state") >= 2, "live view shows the samples as they come"
    assert '"reason":"shutdown"' in out, "the agent stops cleanly and says so"
    assert not port_open("127.0.0.1", port), "the embedded broker is stopped on exit"


def test_up_uses_the_configured_broker_instead_of_starting_one(broker):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update(PRINTMESH_MQTT__HOST=broker.host, PRINTMESH_MQTT__PORT=str(broker.port), PRINTMESH_NODE_ID="cfg")
    r = subprocess.run(
        [sys.executable, "-m", "printmesh_core.cli", "up", "--duration", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "started mosquitto" not in r.stdout and "printmesh/cfg/host/status" in r.stdout
