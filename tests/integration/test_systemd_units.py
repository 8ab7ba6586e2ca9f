"""deploy/systemd: the template unit, its per-agent drop-ins and install.sh, checked by systemd.

install.sh runs with ``--root`` (files only, into a temporary folder), then ``systemd-analyze
verify`` loads each instance with its drop-ins and must say nothing (it exits 0 even on an
unknown key, so any output is a failure), and ``systemd-analyze security --offline`` scores
the sandbox. scripts/test installs systemd-analyze with apt where it is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENTS = ("host", "sensors", "camera", "coordinator")
MAX_EXPOSURE = 2.5  # systemd-analyze security: 0 is locked down, 10 is fully exposed
VENV = Path(sys.executable).parent.parent


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: scripts/test installs it (apt: systemd)"
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


def verify(unit: Path) -> str:
    """systemd-analyze verify's complaints about ``unit`` (empty: none)."""
    r = analyze("verify", str(unit))
    return f"exit {r.returncode}: {r.stdout}{r.stderr}" if r.returncode or r.stdout or r.stderr else ""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / "pi-sensors").write_text("sensor-s3cret\n")
    r = subprocess.run(["bash", str(REPO / "deploy/systemd/install.sh"), "--root", str(root), "--venv", str(VENV),
                        "--node", "pi", "--broker", "srv.lan:8883", "--secrets", str(secrets), *AGENTS],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "copy the password of pi-camera" in r.stderr and "pi-sensors" not in r.stderr
    units = root / "etc/systemd/system"
    for agent in AGENTS:  # an instance of the template, as systemctl would load it
        (units / f"printmesh@{agent}.service").symlink_to("printmesh@.service")
    return root


@pytest.mark.parametrize("agent", AGENTS)
def test_each_instance_passes_systemd_analyze_verify_without_a_word(installed, agent):
    unit = installed / f"etc/systemd/system/printmesh@{agent}.service"
    assert verify(unit) == ""
    text = unit.read_text()
    assert f"ExecStart={VENV}/bin/printmesh %i --config /etc/printmesh/printmesh.yaml" in text


def test_verify_would_catch_a_broken_unit(tmp_path):
    broken = tmp_path / "printmesh@.service"
    text = (REPO / "deploy/systemd/printmesh@.service").read_text().replace("/opt/printmesh/venv", str(VENV))
    broken.write_text(text.replace("Restart=on-failure", "Restart=sometimes"))
    (tmp_path / "printmesh@x.service").symlink_to(broken.name)
    assert "restart specifier" in verify(tmp_path / "printmesh@x.service")


@pytest.mark.parametrize("agent", AGENTS)
def test_each_agent_is_sandboxed(installed, agent):
    r = analyze("security", "--offline=yes", str(installed / f"etc/systemd/system/printmesh@{agent}.service"))
    m = re.search(r"Overall exposure level for printmesh@\w+\.service: ([0-9.]+)", r.stdout)
    assert m, r.stdout[-2000:] + r.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, r.stdout


def directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_the_template_runs_a_dedicated_user_restarts_on_failure_and_allows_no_device():
    d = directives(REPO / "deploy/systemd/printmesh@.service")
    for key, value in {
        "User": "printmesh", "Restart": "on-failure", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
        "PrivateDevices": "yes", "DevicePolicy": "closed", "CapabilityBoundingSet": "", "KillSignal": "SIGTERM",
    }.items():  # fmt: skip
        assert d.get(key) == [value], key
    assert d["LoadCredential"] == ["mqtt_password:/etc/printmesh/secrets/%i"]
    assert d["Environment"] == ["PRINTMESH_MQTT__PASSWORD_FILE=%d/mqtt_password"]


def test_the_drop_ins_give_each_agent_its_hardware_and_nothing_else(installed):
    units = installed / "etc/systemd/system"
    camera = directives(units / "printmesh@camera.service.d/devices.conf")
    assert camera["DeviceAllow"] == ["char-video4linux rw"] and camera["SupplementaryGroups"] == ["video"]
    sensors = directives(units / "printmesh@sensors.service.d/devices.conf")
    assert sensors["DeviceAllow"] == ["char-gpiochip rw"] and sensors["SupplementaryGroups"] == ["gpio"]
    for d in (camera, sensors):
        assert d["PrivateDevices"] == ["no"] and d["DevicePolicy"] == ["closed"]
    assert not (units / "printmesh@host.service.d").exists(), "the host agent needs no device"
    coordinator = directives(units / "printmesh@coordinator.service.d/captures.conf")
    assert coordinator["Environment"] == ["PRINTMESH_COORDINATOR__CAPTURES_DIR=/var/lib/printmesh/captures"]
    # char-<name> is the driver's name in /proc/devices: "gpiochip" (gpiolib-cdev's GPIOCHIP_NAME)
    # and "video4linux" (v4l2-dev) on a Pi; this test machine has neither driver to show it.


def test_install_writes_each_agents_account_and_keeps_its_secret_private(installed):
    etc = installed / "etc/printmesh"
    assert (etc / "camera.env").read_text().splitlines()[1:] == [
        "PRINTMESH_MQTT__USERNAME=pi-camera", "PRINTMESH_MQTT__HOST=srv.lan", "PRINTMESH_MQTT__PORT=8883",
    ]  # fmt: skip
    secret = etc / "secrets/sensors"
    assert secret.read_text() == "sensor-s3cret\n" and secret.stat().st_mode & 0o777 == 0o600
    assert (etc / "secrets").stat().st_mode & 0o777 == 0o700
    assert "node_id: pi\n" in (etc / "printmesh.yaml").read_text()
    r = subprocess.run([str(VENV / "bin/printmesh"), "sensors", "--config", str(etc / "printmesh.yaml"), "--check"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_install_refuses_bad_arguments(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(REPO / "deploy/systemd/install.sh"), "--root", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=30)  # fmt: skip

    assert "--node" in run("host").stderr and run("host").returncode == 2
    assert "unknown argument 'printer'" in run("--node", "pi", "printer").stderr
    assert "not a node id" in run("--node", "a/b", "host").stderr
    assert "at least one agent" in run("--node", "pi").stderr
