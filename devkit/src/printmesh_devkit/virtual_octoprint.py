"""A real, headless ``octoprint serve`` with its bundled virtual printer and the printmesh plugin.

The main job (``printmesh up --octoprint VENV``) and the test suite both run OctoPrint
this way: a throwaway base directory with the first-run wizard done, the plugins that
call the internet off, the virtual printer connected at start-up and a known API key.
OctoPrint runs from its own virtualenv, exactly as on a Pi; nothing here imports it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from printmesh_devkit.broker import free_port

API_KEY = "PRINTMESHTESTKEY0123456789ABCDEF"
USER, PASSWORD = "admin", "admin123"
DISABLED = [
    "announcements", "tracking", "errortracking", "softwareupdate", "discovery",
    "pi_support", "health_check", "pluginmanager", "firmware_check", "file_check",
]  # fmt: skip


def write_basedir(basedir: Path, plugin_settings: dict[str, Any]) -> None:
    basedir.mkdir(parents=True, exist_ok=True)
    config = {
        "server": {
            "firstRun": False,
            "onlineCheck": {"enabled": False},
            "pluginBlacklist": {"enabled": False},
            "seenWizards": {"corewizard": 4, "classicwebcam": 1, "file_check": 1},
        },
        "serial": {"port": "VIRTUAL", "baudrate": 115200, "autoconnect": True, "log": True},
        "plugins": {
            "_disabled": DISABLED,
            "virtual_printer": {"enabled": True, "simulated_errors": []},
            "printmesh": plugin_settings,
        },
    }
    (basedir / "config.yaml").write_text(yaml.safe_dump(config))


@dataclass
class OctoPrint:
    basedir: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("X-Api-Key", API_KEY)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def upload(self, name: str, data: bytes, print_now: bool = True) -> Any:
        """POST /api/files/local as multipart, selecting and (by default) starting the print.

        OctoPrint silently ignores ``select``/``print`` while the last print is still
        "Finishing" (``PrintDone`` fires before it is Operational again), so a print waits for that first."""
        if print_now:
            self.wait_operational()
        boundary = "printmeshboundary7f3a"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n",
            f'--{boundary}\r\nContent-Disposition: form-data; name="select"\r\n\r\ntrue\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="print"\r\n\r\n{print_now!s}\r\n'.lower().encode(),
            f"--{boundary}--\r\n".encode(),
        ]
        req = urllib.request.Request(self.url + "/api/files/local", data=b"".join(parts), method="POST")
        req.add_header("X-Api-Key", API_KEY)
        req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stored(self, name: str) -> bytes:
        """The file as OctoPrint stored it in its local uploads (after any preprocessor)."""
        return (self.basedir / "uploads" / name).read_bytes()

    def serial_log(self) -> str:
        path = self.basedir / "logs" / "serial.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log(self) -> str:
        path = self.basedir / "logs" / "octoprint.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_operational(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"octoprint exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if self.api("GET", "/api/connection")["current"]["state"] == "Operational":
                    return
            except (urllib.error.URLError, http.client.HTTPException, OSError, KeyError, TimeoutError) as exc:
                last = exc
            time.sleep(0.2)
        raise TimeoutError(f"octoprint not operational within {timeout}s ({last}); log: {self.log()[-2000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def start_octoprint(
    venv: Path, basedir: Path, plugin_settings: dict[str, Any], port: int | None = None, quiet: bool = True
) -> OctoPrint:
    """Start ``octoprint serve`` from ``venv`` on 127.0.0.1; call ``wait_operational`` next."""
    exe = venv / "bin" / "octoprint"
    if not exe.exists():
        raise RuntimeError(f"no OctoPrint at {exe}: make that venv with scripts/test or scripts/demo")
    write_basedir(basedir, plugin_settings)
    subprocess.run(
        [str(exe), "--basedir", str(basedir), "user", "add", USER, "--password", PASSWORD, "--admin"],
        check=True, capture_output=True,
    )  # fmt: skip
    users = yaml.safe_load((basedir / "users.yaml").read_text())
    users[USER]["apikey"] = API_KEY
    (basedir / "users.yaml").write_text(yaml.safe_dump(users))
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(
        [str(exe), "serve", "--basedir", str(basedir), "--host", "127.0.0.1", "--port", str(port),
         "--iknowwhatimdoing"],
        stdout=out, stderr=out, env=env, start_new_session=True,
    )  # fmt: skip
    return OctoPrint(basedir, port, proc)
