"""The Dashboard's whole mesh, all real: mosquitto, ``octoprint serve`` with the virtual printer
and the bridge, a host agent on the same node, a simulated-DHT sensors agent, a synthetic
camera with previews, and the coordinator; plus chromium logged in to OctoPrint.

Shared by tests/integration/test_dashboard_browser.py and bench/dashboard.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from octoprint_harness import API_KEY, OctoPrint, octoprint_venv, start_octoprint
from printing import printable

PRINTER, SENSORS, CAMS, COORD = "dashprinter", "sensorpi", "campi", "dashcoord"
FILE = "prusa_variable"  # 20 layers, PrusaSlicer
KEEPALIVE = 5  # s: the sensors agent's last will fires within 1.5 x this after it dies
SHELL_TEXT = "hello-from-the-shell-command"
VIEWER, VIEWER_PASSWORD = "viewer", "viewer123"


def agent_configs(captures: Path) -> dict[str, dict[str, Any]]:
    return {
        "host": {"node_id": PRINTER, "host": {"interval": 1, "commands": [
            {"name": "greeting", "argv": ["echo", SHELL_TEXT], "interval": 2}]}},
        "sensors": {"node_id": SENSORS, "mqtt": {"keepalive": KEEPALIVE}, "sensors": {"sensors": [
            {"name": "enclosure", "location": "enclosure", "driver": "simulated", "seed": 3, "interval": 1}]}},
        "camera": {"node_id": CAMS, "camera": {"cameras": [
            {"name": "bed", "source": {"type": "synthetic", "fps": 10}, "width": 320, "height": 240,
             "preview": {"interval": 1}}]}},
        "coordinator": {"node_id": COORD, "coordinator": {"captures_dir": str(captures), "printers": [
            {"node": PRINTER, "plan": {"every": 5}, "grid": {"size": 3, "spacing": 30}, "settle": 0.05,
             "cameras": [{"node": CAMS, "camera": "bed"}]}]}},
    }  # fmt: skip


@dataclass
class Mesh:
    octoprint: OctoPrint
    agents: dict[str, Any]  # component -> its process handle (with .stop(sig))

    def start_print(self, speed: int = 100) -> None:
        self.octoprint.api("POST", "/api/printer/command", {"commands": [f"M220 S{speed}", f"M221 S{speed}"]})
        self.octoprint.upload(f"{FILE}.gcode", printable(FILE))


def start_mesh(broker_port: int, tmp: Path, run_agent: Callable[..., Any], components: tuple[str, ...] = (
        "host", "sensors", "camera", "coordinator")) -> Mesh:  # fmt: skip
    settings = {"node_id": PRINTER, "mqtt": {"host": "127.0.0.1", "port": broker_port}}
    octoprint = start_octoprint(tmp / "octoprint", settings)
    configs = agent_configs(tmp / "captures")
    agents = {name: run_agent(name, configs[name]) for name in components}
    octoprint.wait_operational()
    return Mesh(octoprint, agents)


def add_viewer(octoprint: OctoPrint) -> None:
    """A second OctoPrint user in the plain users group (not admin): no shell output permission."""
    body = {"name": VIEWER, "password": VIEWER_PASSWORD, "active": True, "groups": ["users"], "permissions": []}
    octoprint.api("POST", "/api/access/users", body)


def login(page: Any, octoprint: OctoPrint, user: str = "admin", password: str = "admin123") -> None:
    """Log in through OctoPrint's own login page, then land on the index."""
    page.goto(octoprint.url + "/login", wait_until="load")
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-button")
    page.wait_for_url(lambda url: "/login" not in url, timeout=30_000)


def api_as(octoprint: OctoPrint, path: str, key: str = API_KEY) -> tuple[int, Any]:
    req = urllib.request.Request(octoprint.url + path, headers={"X-Api-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


class Agents:
    """``run_agent`` outside pytest (the benchmark): ``printmesh <component> --config`` processes."""

    def __init__(self, broker_port: int, tmp: Path) -> None:
        self.port, self.tmp, self.procs = broker_port, tmp, []  # type: list[subprocess.Popen[bytes]]

    def __call__(self, component: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
        path = self.tmp / f"{component}.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
        env.update({"PRINTMESH_MQTT__HOST": "127.0.0.1", "PRINTMESH_MQTT__PORT": str(self.port)})
        log = (self.tmp / f"{component}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "printmesh_core.cli", component, "--config", str(path)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)


def octoprint_user_add(octoprint: OctoPrint, name: str, password: str) -> None:
    exe = octoprint_venv() / "bin" / "octoprint"
    subprocess.run([str(exe), "--basedir", str(octoprint.basedir), "user", "add", name, "--password", password],
                   check=True, capture_output=True)  # fmt: skip
