"""compose.yaml, deploy/Dockerfile and .env.example keep the deployment rules of issue 12.

Docker is not needed: the files are read as text and YAML (PyYAML resolves the anchors and
merge keys as compose does). ``docker-compose config --quiet`` itself runs in
tests/integration/test_shipped_deploy.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AGENTS = ("host", "sensors", "camera", "coordinator")
DEVICES = {"server": {"mosquitto", "coordinator", "host"}, "printer-pi": {"octoprint", "camera", "host"},
           "sensor-pi": {"sensors", "host"}}  # fmt: skip


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return data


def services() -> dict[str, Any]:
    return compose()["services"]


@dataclass
class Stage:
    name: str
    base: str
    lines: list[str] = field(default_factory=list)

    def instructions(self, keyword: str) -> list[str]:
        return [line[len(keyword) :].strip() for line in self.lines if line.upper().startswith(keyword + " ")]


def stages() -> dict[str, Stage]:
    """Each ``FROM ... AS name`` stage with its instructions (continuation lines joined)."""
    text = (REPO / "deploy/Dockerfile").read_text()
    logical = re.sub(r"\\\n\s*", " ", text)
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)$", line, re.IGNORECASE)
        if m:
            current = out[m.group(2)] = Stage(m.group(2), m.group(1))
        elif current is not None:
            current.lines.append(line)
    return out


def effective(stage: str, keyword: str) -> str | None:
    """The last ``keyword`` instruction in force for a stage, following its FROM chain."""
    all_stages = stages()
    s: Stage | None = all_stages[stage]
    while s is not None:
        found = s.instructions(keyword)
        if found:
            return found[-1]
        s = all_stages.get(s.base)
    return None


def test_every_service_is_in_a_profile_and_each_device_profile_starts_its_units():
    svc = services()
    assert set(svc) == {"mosquitto", *AGENTS, "octoprint"}
    for name, spec in svc.items():
        assert spec.get("profiles"), f"{name}: no profile, so every device would start it"
        assert name in spec["profiles"] or (name == "mosquitto" and "broker" in spec["profiles"]), name
    for device, expected in DEVICES.items():
        assert {n for n, s in svc.items() if device in s["profiles"]} == expected, device


def test_nothing_is_privileged_and_agents_are_locked_down():
    for name, spec in services().items():
        assert not spec.get("privileged"), name
        assert "cap_add" not in spec and spec.get("pid") is None and spec.get("network_mode") is None, name
    for name in AGENTS:
        spec = services()[name]
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in spec["security_opt"], name
        assert spec["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile", "target": name}, name
        assert spec["restart"] == "unless-stopped" and spec["depends_on"]["mosquitto"]["required"] is False, name
        assert spec["stop_grace_period"], name


def test_each_agent_has_its_own_account_and_secret_never_anonymous():
    secrets = compose()["secrets"]
    for name in AGENTS:
        env = services()[name]["environment"]
        assert env["PRINTMESH_MQTT__USERNAME"] == f"${{PRINTMESH_NODE_ID:-octopi}}-{name}", name
        assert env["PRINTMESH_MQTT__PASSWORD_FILE"] == "/run/secrets/mqtt_password", name
        (secret,) = services()[name]["secrets"]
        assert secret["target"] == "mqtt_password"
        assert secrets[secret["source"]]["file"] == f"./deploy/secrets/${{PRINTMESH_NODE_ID:-octopi}}-{name}"
    assert "deploy/secrets/" in (REPO / ".gitignore").read_text().splitlines()


def test_the_broker_has_accounts_persistence_and_a_healthcheck():
    m = services()["mosquitto"]
    assert m["image"] == "eclipse-mosquitto:2"
    assert m["command"][-1] == "/mosquitto/config/${PRINTMESH_MOSQUITTO_CONF:-mosquitto.conf}"
    assert "./deploy/mosquitto:/mosquitto/config:ro" in m["volumes"]
    assert "mosquitto-data:/mosquitto/data" in m["volumes"] and "mosquitto-data" in compose()["volumes"]
    test = m["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "mosquitto_sub" in test[1] and "$$SYS" in test[1]
    conf = (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "password_file /mosquitto/config/passwd" in conf
    assert "acl_file /mosquitto/config/acl" in conf and "persistence true" in conf


def test_hardware_the_least_that_works():
    svc = services()
    assert svc["camera"]["devices"] == ["${VIDEO_DEVICE:-/dev/video0}:/dev/video0"]
    assert svc["sensors"]["devices"] == ["${GPIOCHIP:-/dev/gpiochip0}:/dev/gpiochip0"]
    assert svc["sensors"]["group_add"] and svc["camera"]["group_add"]
    for name in ("host", "coordinator"):
        assert "devices" not in svc[name], name
    host = svc["host"]
    assert host["environment"]["PRINTMESH_HOST__ROOT"] == "/host"
    assert "/proc:/host/proc:ro" in host["volumes"] and "/sys:/host/sys:ro" in host["volumes"]
    root = next(v for v in host["volumes"] if isinstance(v, dict))
    assert (root["source"], root["target"], root["read_only"]) == ("/", "/host", True)


def test_octoprint_is_the_official_image_with_the_bridge():
    spec = services()["octoprint"]
    assert spec["build"]["target"] == "octoprint"
    s = stages()["octoprint"]
    assert s.base == "${OCTOPRINT_IMAGE}"
    assert "ARG OCTOPRINT_IMAGE=octoprint/octoprint:latest" in (REPO / "deploy/Dockerfile").read_text()
    assert any("printmesh-octoprint" in r for r in s.instructions("RUN")) and s.instructions("HEALTHCHECK")


@pytest.mark.parametrize("target", AGENTS)
def test_each_image_is_slim_non_root_healthy_and_stops_cleanly(target):
    all_stages = stages()
    assert target in all_stages
    chain, s = [], all_stages[target]
    while s is not None:
        chain.append(s)
        s = all_stages.get(s.base)
    assert (
        chain[-1].base == "${PYTHON_IMAGE}"
        and "ARG PYTHON_IMAGE=python:3.11-slim" in (REPO / "deploy/Dockerfile").read_text()
    )
    user = effective(target, "USER")
    assert user is not None and user not in ("root", "0"), target
    health = effective(target, "HEALTHCHECK")
    assert health is not None and "printmesh_core.healthcheck" in health, target
    entry = effective(target, "ENTRYPOINT")
    assert entry is not None and json.loads(entry) == ["printmesh"], "exec form: printmesh is PID 1 and gets SIGTERM"
    runs = " ".join(r for st in chain for r in st.instructions("RUN"))
    assert "gcc" not in runs, "no compiler in a final image"
    installs = [r for r in all_stages[target].instructions("RUN") if "pip install" in r]
    assert installs and all("--no-index" in r for r in installs), "only the unit's own wheels"


def test_nothing_downloads_a_prebuilt_binary_and_the_context_has_what_copy_needs():
    text = (REPO / "deploy/Dockerfile").read_text()
    assert not re.search(r"\b(curl|wget)\b", text.split("FROM", 1)[1]), "no per-architecture downloads"
    ignore = (REPO / "deploy/Dockerfile.dockerignore").read_text().splitlines()
    included = {line[1:] for line in ignore if line.startswith("!")}
    for s in stages().values():
        for copy in s.instructions("COPY"):
            if copy.startswith("--from"):
                continue
            source = copy.split()[0]
            assert f"{source}/pyproject.toml" in included and f"{source}/src" in included, source
            readme = tomllib.loads((REPO / source / "pyproject.toml").read_text())["project"].get("readme")
            assert readme is None or f"{source}/{readme}" in included, (source, readme)


def test_every_variable_compose_reads_is_in_env_example():
    used = set(re.findall(r"\$\{([A-Z_]+)", (REPO / "compose.yaml").read_text()))
    example = (REPO / ".env.example").read_text()
    assert used, "compose.yaml reads its settings from .env"
    for name in used:
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def test_no_shipped_file_opens_the_broker_unless_it_says_so_first():
    for conf in sorted((REPO / "deploy/mosquitto").glob("*.conf")):
        text = conf.read_text()
        if re.search(r"^allow_anonymous true", text, re.MULTILINE):
            assert conf.name.startswith("INSECURE-") and text.startswith("# INSECURE: NO AUTHENTICATION"), conf
        else:
            assert re.search(r"^allow_anonymous false", text, re.MULTILINE), conf
    for path in [*REPO.glob("examples/*.yaml"), REPO / "deploy/printmesh.yaml"]:
        mqtt = (yaml.safe_load(path.read_text()) or {}).get("mqtt") or {}
        assert not {"username", "password"} & set(mqtt), f"{path}: accounts come from the environment and secrets"
    assert "private to this" in (REPO / "examples/demo.yaml").read_text(), "the demo says its broker has no accounts"
    assert "PRINTMESH_MOSQUITTO_CONF:-mosquitto.conf" in (REPO / "compose.yaml").read_text()
