"""``printmesh up``: the main job on one machine.

Starts mosquitto when no broker is configured, checks the broker (preflight.py) before it
prints anything, runs every installed agent against it as child processes, and prints each
message under the topic root, until Ctrl-C. A child that dies is started again with backoff
(supervise.py), and ``up`` says so. The core CLI hands ``printmesh up ...`` to
:func:`main` through the ``printmesh.tools`` entry point.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from types import FrameType

from printmesh_core.components import COMPONENTS, TOOLS, installed_names
from printmesh_core.config import AgentSettings, ConfigError, MqttConfig, load_settings, read_yaml
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import Topics
from printmesh_devkit.broker import BrokerError, LocalBroker, port_open
from printmesh_devkit.preflight import PreflightError, check_round_trip, largest_capture, live_owner, quiet_runtime
from printmesh_devkit.supervise import Supervisor
from printmesh_devkit.up_print import PrintJob

VIEW_WIDTH = 160


def build_parser() -> argparse.ArgumentParser:
    up = argparse.ArgumentParser(
        prog="printmesh up",
        description="Start mosquitto if no broker is configured, run the installed agents, and print every message. "
        "With --octoprint, also run OctoPrint with its virtual printer and the bridge, print --print's file "
        "with the coordinator capturing, show the progress instead of the raw messages, and stop at the end. "
        f"{TOOLS['up'].summary}.",
    )
    up.add_argument("-c", "--config", type=Path, metavar="FILE", help="YAML config passed to every agent.")
    up.add_argument("--no-view", action="store_true", help="Do not print the live message view.")
    up.add_argument(
        "--broker", choices=["auto", "mosquitto"], default="auto",
        help="Broker to start when none is configured: mosquitto (auto is the same; there is no fallback).",
    )  # fmt: skip
    up.add_argument("--broker-port", type=int, default=1883, help="Port of the started broker (default 1883).")
    up.add_argument("--duration", type=float, default=0, help="Stop after this many seconds (0 = run until Ctrl-C).")
    up.add_argument("--octoprint", type=Path, metavar="VENV", help="OctoPrint's venv, with the bridge.")
    up.add_argument("--print", dest="gcode", type=Path, metavar="GCODE", help="File to print (with --octoprint).")
    return up


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return run_up(
        args.config, view=not args.no_view, duration=args.duration, port=args.broker_port,
        octoprint=args.octoprint, gcode=args.gcode,
    )  # fmt: skip


def broker_configured(config: Path | None) -> bool:
    mqtt = read_yaml(config).get("mqtt") if config else None
    in_file = isinstance(mqtt, dict) and ("host" in mqtt or "hosts" in mqtt)
    return in_file or "PRINTMESH_MQTT__HOST" in os.environ or "PRINTMESH_MQTT__HOSTS" in os.environ


def render(message: Message) -> str:
    try:
        text = message.payload.decode()
        body = text if text.isprintable() or not text else f"<{len(message.payload)} bytes>"
    except UnicodeDecodeError:
        body = f"<{len(message.payload)} bytes binary>"
    line = f"{datetime.now():%H:%M:%S} {message.topic} {body}"
    return line if len(line) <= VIEW_WIDTH else line[: VIEW_WIDTH - 1] + "…"


class Up:
    def __init__(self, config: Path | None, broker_port: int) -> None:
        self.config = config
        self.broker_port = broker_port
        self.broker: LocalBroker | None = None
        self.supervisor = Supervisor(lambda line: print(line, flush=True))
        self.env = dict(os.environ)
        self.stop = threading.Event()

    def start_broker(self) -> tuple[str, bool]:
        """(what to tell the user once the preflight passed, whether the broker may be shared with others)."""
        if broker_configured(self.config):
            return "", True
        self.env["PRINTMESH_MQTT__HOST"] = "127.0.0.1"
        self.env["PRINTMESH_MQTT__PORT"] = str(self.broker_port)
        if port_open("127.0.0.1", self.broker_port):
            return f"# using the broker already listening on localhost:{self.broker_port}", True
        self.broker = LocalBroker(port=self.broker_port).start()
        return f"# started mosquitto on 127.0.0.1:{self.broker_port} (no broker configured)", False

    def mqtt(self, settings: AgentSettings) -> MqttConfig:
        """The agents' broker: the configured one, or the one ``start_broker`` chose."""
        update: dict[str, object] = {}
        if "PRINTMESH_MQTT__HOST" in self.env:
            update = {"host": self.env["PRINTMESH_MQTT__HOST"], "port": int(self.env["PRINTMESH_MQTT__PORT"])}
        return settings.mqtt.model_copy(update=update)

    def start_agents(self, names: list[str], log_dir: Path | None = None) -> None:
        """With ``log_dir``, each agent logs to ``<log_dir>/<name>.log`` (the progress view stays readable).

        Every agent runs in the folder ``up`` runs in, where ``up`` also puts OctoPrint's basedir
        (``.printmesh/octoprint``): a relative path in the config (a virtual camera's ``files``)
        names the same folder for ``up`` and for the agents, from any working directory.
        """
        cwd = Path.cwd()
        for name in names:
            cmd = [sys.executable, "-m", "printmesh_core.cli", name]
            if self.config:
                cmd += ["--config", str(self.config.resolve())]
            log = None if log_dir is None else log_dir / f"{name}.log"
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text("")  # this run's log; a restarted agent appends to it
            self.supervisor.add(name, partial(self._spawn, cmd, cwd, log))
            print(f"# started printmesh {name}" + (f" (log: {log})" if log else ""), flush=True)

    def _spawn(self, cmd: list[str], cwd: Path, log: Path | None) -> subprocess.Popen[bytes]:
        if log is None:
            return subprocess.Popen(cmd, env=self.env, cwd=cwd)
        with log.open("a") as out:
            return subprocess.Popen(cmd, env=self.env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

    def view(self, settings: AgentSettings, job: PrintJob | None = None) -> MqttRuntime:
        mqtt = self.mqtt(settings)
        if job is not None:  # 3.1.1: the retain flag then marks exactly what was stored before the job began
            mqtt = mqtt.model_copy(update={"protocol": "3.1.1"})
        rt = MqttRuntime(mqtt, settings.topic_root, f"printmesh-view-{os.getpid()}")
        if job is None:
            everything = Topics(settings.topic_root, settings.node_id).everything
            rt.subscribe(everything, lambda m: print(render(m), flush=True), qos=0)
        else:
            job.watch(rt)
        rt.start()
        rt.wait_connected(5)
        return rt

    def stop_agents(self) -> None:
        self.supervisor.stop(10)


def run_up(
    config: Path | None,
    view: bool = True,
    duration: float = 0,
    port: int = 1883,
    octoprint: Path | None = None,
    gcode: Path | None = None,
) -> int:
    try:
        settings = load_settings(AgentSettings, config)
    except ConfigError as exc:
        print(f"printmesh up: invalid config: {exc}", file=sys.stderr)
        return 2
    problem = _check_print_args(octoprint, gcode)
    if problem:
        print(f"printmesh up: {problem}", file=sys.stderr)
        return 2
    up = Up(config, port)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        up.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        note, shared = up.start_broker()
        _preflight(up.mqtt(settings), settings, config, shared)
    except (BrokerError, PreflightError) as exc:
        print(f"printmesh up: {exc}", file=sys.stderr)
        if up.broker:
            up.broker.close()
        return 1
    if note:
        print(note, flush=True)
    job = None
    if octoprint is not None and gcode is not None:
        job = PrintJob(octoprint, gcode, settings, up.mqtt(settings), Path(".printmesh", "octoprint").resolve())
    viewer = up.view(settings, job) if view or job else None
    if job is not None:
        job.start_octoprint()
    installed = installed_names()
    up.start_agents([n for n in COMPONENTS if n in installed], Path(".printmesh") / "logs" if job else None)
    try:
        if job is not None:
            job.start_print(up.stop)
        _wait(up, job, duration)
        if job is not None and not up.stop.is_set():
            job.wait_for_page(_captures_dir(config), up.stop)
    finally:
        up.stop_agents()
        if job is not None:
            job.stop()
    interrupted = up.stop.is_set()
    status = (
        job.report(_captures_dir(config), str(up.mqtt(settings).brokers[0].port), interrupted) if job is not None else 0
    )
    if viewer:
        time.sleep(0.3)  # let the agents' clean "offline" reach the view
        viewer.stop()
    if up.broker:
        up.broker.close()
    return status


def _preflight(mqtt: MqttConfig, settings: AgentSettings, config: Path | None, shared: bool) -> None:
    """Raises PreflightError with one line: the broker cannot carry a capture, or our node id is taken."""
    size, what = largest_capture(config)
    with quiet_runtime():
        if size:
            check_round_trip(mqtt, settings.topic_root, size, f"the largest capture, {what}")
        owner = live_owner(mqtt, settings) if shared else None
    if owner is not None:
        raise PreflightError(
            f"node id {settings.node_id!r} is in use by a live node on {mqtt.where} "
            f"(its {owner} answered): stop it, or set another node_id in the config"
        )


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
        up.supervisor.poll()  # a child that died is started again, with backoff
        if up.supervisor.children and not up.supervisor.alive():
            print("printmesh up: every agent exited", file=sys.stderr)
            return
        up.stop.wait(0.2)
