"""``printmesh up``: the main job on one machine.

Starts a broker when none is configured (mosquitto if installed, else the iotcore broker
from PyPI), runs every installed agent against it as child processes, and prints each
message under the topic root, until Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import FrameType

from printmesh_core.broker import BrokerError, LocalBroker, mosquitto_path, port_open
from printmesh_core.config import AgentSettings, ConfigError, load_settings, read_yaml
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.up_print import PrintJob

UP_COMPONENTS = ("host", "sensors", "camera", "coordinator")
VIEW_WIDTH = 160


def broker_configured(config: Path | None) -> bool:
    in_file = bool(config and isinstance(read_yaml(config).get("mqtt"), dict) and "host" in read_yaml(config)["mqtt"])
    return in_file or "PRINTMESH_MQTT__HOST" in os.environ


def render(message: Message) -> str:
    try:
        text = message.payload.decode()
        body = text if text.isprintable() or not text else f"<{len(message.payload)} bytes>"
    except UnicodeDecodeError:
        body = f"<{len(message.payload)} bytes binary>"
    line = f"{datetime.now():%H:%M:%S} {message.topic} {body}"
    return line if len(line) <= VIEW_WIDTH else line[: VIEW_WIDTH - 1] + "…"


class Up:
    def __init__(self, config: Path | None, broker_kind: str, broker_port: int) -> None:
        self.config = config
        self.broker_kind = broker_kind
        self.broker_port = broker_port
        self.broker: LocalBroker | None = None
        self.children: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ)
        self.stop = threading.Event()

    def start_broker(self) -> None:
        if broker_configured(self.config):
            return
        if port_open("127.0.0.1", self.broker_port):
            print(f"# using the broker already listening on localhost:{self.broker_port}", flush=True)
        else:
            kind = self.broker_kind if self.broker_kind != "auto" else ("mosquitto" if mosquitto_path() else "iotcore")
            self.broker = LocalBroker(port=self.broker_port, kind=kind).start()
            print(f"# started {kind} on 127.0.0.1:{self.broker_port} (no broker configured)", flush=True)
            if kind == "iotcore":  # its plain listener speaks MQTT 3.1.1
                self.env["PRINTMESH_MQTT__PROTOCOL"] = "3.1.1"
        self.env["PRINTMESH_MQTT__HOST"] = "127.0.0.1"
        self.env["PRINTMESH_MQTT__PORT"] = str(self.broker_port)

    def start_agents(self, names: list[str], log_dir: Path | None = None) -> None:
        """With ``log_dir``, each agent logs to ``<log_dir>/<name>.log`` (the progress view stays readable)."""
        for name in names:
            cmd = [sys.executable, "-m", "printmesh_core.cli", name]
            if self.config:
                cmd += ["--config", str(self.config.resolve())]
            if log_dir is None:
                self.children.append(subprocess.Popen(cmd, env=self.env))
                print(f"# started printmesh {name}", flush=True)
                continue
            log_dir.mkdir(parents=True, exist_ok=True)
            with (log_dir / f"{name}.log").open("w") as log:
                self.children.append(subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT))
            print(f"# started printmesh {name} (log: {log_dir / f'{name}.log'})", flush=True)

    def view(self, settings: AgentSettings, job: PrintJob | None = None) -> MqttRuntime:
        mqtt = settings.mqtt.model_copy(
            update={"host": self.env["PRINTMESH_MQTT__HOST"], "port": int(self.env["PRINTMESH_MQTT__PORT"]),
                    "protocol": self.env.get("PRINTMESH_MQTT__PROTOCOL", settings.mqtt.protocol)}
        )  # fmt: skip
        rt = MqttRuntime(mqtt, settings.topic_root, f"printmesh-view-{os.getpid()}")
        if job is None:
            rt.subscribe(f"{settings.topic_root}/#", lambda m: print(render(m), flush=True), qos=0)
        else:
            job.watch(rt)
        rt.start()
        return rt

    def stop_agents(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()


def run_up(
    config: Path | None,
    view: bool = True,
    duration: float = 0,
    broker: str = "auto",
    port: int = 1883,
    octoprint: Path | None = None,
    gcode: Path | None = None,
) -> int:
    from printmesh_core.cli import installed_names

    try:
        settings = load_settings(AgentSettings, config)
    except ConfigError as exc:
        print(f"printmesh up: invalid config: {exc}", file=sys.stderr)
        return 2
    problem = _check_print_args(octoprint, gcode)
    if problem:
        print(f"printmesh up: {problem}", file=sys.stderr)
        return 2
    up = Up(config, broker, port)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        up.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        up.start_broker()
    except BrokerError as exc:
        print(f"printmesh up: {exc}", file=sys.stderr)
        return 1
    job = None
    if octoprint is not None and gcode is not None:
        job = PrintJob(octoprint, gcode, settings, up.env, Path(".printmesh", "octoprint").resolve())
        job.start_octoprint()
    installed = installed_names()
    up.start_agents([n for n in UP_COMPONENTS if n in installed], Path(".printmesh") / "logs" if job else None)
    viewer = up.view(settings, job) if view or job else None
    try:
        if job is not None:
            job.start_print(up.stop)
        _wait(up, job, duration)
    finally:
        up.stop_agents()
        if job is not None:
            job.stop()
    if job is not None:
        job.report(_captures_dir(config), up.env["PRINTMESH_MQTT__PORT"])
    if viewer:
        time.sleep(0.3)  # let the agents' clean "offline" reach the view
        viewer.stop()
    if up.broker:
        up.broker.close()
    return 0


def _check_print_args(octoprint: Path | None, gcode: Path | None) -> str | None:
    if (octoprint is None) != (gcode is None):
        return "--octoprint and --print go together"
    if octoprint is not None and not (octoprint / "bin" / "octoprint").exists():
        return f"--octoprint {octoprint}: no bin/octoprint there (make it with scripts/demo)"
    if gcode is not None and not gcode.is_file():
        return f"--print {gcode}: no such file"
    return None


def _captures_dir(config: Path | None) -> Path:
    section = read_yaml(config).get("coordinator") if config else None
    return Path(section.get("captures_dir", "captures")) if isinstance(section, dict) else Path("captures")


def _wait(up: Up, job: PrintJob | None, duration: float) -> None:
    deadline = time.monotonic() + duration if duration > 0 else None
    while not up.stop.is_set():
        if deadline and time.monotonic() >= deadline:
            return
        if job is not None and job.done.is_set():
            return
        if up.children and all(c.poll() is not None for c in up.children):
            print("printmesh up: every agent exited", file=sys.stderr)
            return
        up.stop.wait(0.2)
