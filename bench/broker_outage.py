"""How long after a broker restart every component is back: real processes, one mosquitto.

Starts a host agent, a camera agent (synthetic source) and a coordinator as ``printmesh``
processes, and an in-process ``MqttRuntime`` configured like ``printmesh up``'s own view
(defaults: no presence), all on one mosquitto. For each outage length it stops the broker,
waits, starts it again on the same port and measures, from the moment the port accepts
connections again, when each component is back:

* a process: its retained ``status`` is ``online`` again, read by a fresh observer
  connection made right after the restart (the broker runs without persistence, so any
  retained status seen after the restart was published after it);
* the in-process view: ``MqttRuntime.connected`` is true again.

The bridge inside OctoPrint uses the same runtime and config; tests/integration/
test_broker_chaos.py measures it with a real OctoPrint. The processes take their sources
from ``PYTHONPATH``, so one script measures two trees one after the other (``bench/ab.py``
would mix the outages: their lengths are numbers on the same line)::

    PYTHONPATH=<tree's src folders> .venv/bin/python bench/broker_outage.py --outages 3 20 40

Prints one line per outage and component; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from printmesh_core.config import MqttConfig
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_devkit.broker import LocalBroker

COMPONENTS = {  # status topic -> name shown
    "printmesh/bench-host/host/status": "host agent",
    "printmesh/bench-cam/camera/status": "camera agent",
    "printmesh/bench-coord/coordinator/status": "coordinator",
}


def configs(port: int, folder: Path) -> dict[str, dict[str, Any]]:
    cam = {"name": "bed", "source": {"type": "synthetic", "fps": 5}, "width": 160, "height": 120}
    printer = {"node": "bench-printer", "plan": {"every": 5}, "grid": {"size": 1},
               "cameras": [{"node": "bench-cam", "camera": "bed"}]}  # fmt: skip
    return {
        "host": {"node_id": "bench-host"},
        "camera": {"node_id": "bench-cam", "camera": {"cameras": [cam]}},
        "coordinator": {
            "node_id": "bench-coord",
            "coordinator": {"captures_dir": str(folder / "captures"), "printers": [printer], "pages": False},
        },
    }


def start_processes(broker: LocalBroker, folder: Path) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update({"PRINTMESH_MQTT__HOST": broker.host, "PRINTMESH_MQTT__PORT": str(broker.port)})
    procs = []
    for component, config in configs(broker.port, folder).items():
        path = folder / f"{component}.yaml"
        path.write_text(yaml.safe_dump(config))
        log = (folder / f"{component}.log").open("wb")
        cmd = [sys.executable, "-m", "printmesh_core.cli", component, "--config", str(path)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


class Watch:
    """A fresh connection after the restart: when each component's status said online."""

    def __init__(self, broker: LocalBroker, since: float) -> None:
        self.since = since
        self.back: dict[str, float] = {}
        self.lock = threading.Lock()
        cfg = MqttConfig(host=broker.host, port=broker.port)
        self.runtime = MqttRuntime(cfg, "printmesh", f"bench-watch-{time.monotonic_ns()}")
        self.runtime.subscribe("printmesh/+/+/status", self._status, qos=1)

    def _status(self, message: Message) -> None:
        try:
            online = json.loads(message.payload).get("state") == "online"
        except (ValueError, AttributeError):
            return
        if online and message.topic in COMPONENTS:
            with self.lock:
                self.back.setdefault(message.topic, time.monotonic() - self.since)

    def wait_all(self, timeout: float) -> dict[str, float]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.back) == len(COMPONENTS):
                    break
            time.sleep(0.02)
        with self.lock:
            return dict(self.back)


def wait_online(broker: LocalBroker, timeout: float) -> None:
    watch = Watch(broker, time.monotonic())
    watch.runtime.start()
    try:
        back = watch.wait_all(timeout)
        if len(back) != len(COMPONENTS):
            raise SystemExit(f"components not online at start: {sorted(set(COMPONENTS) - set(back))}")
    finally:
        watch.runtime.stop()


def outage(broker: LocalBroker, view: MqttRuntime, seconds: float, timeout: float) -> dict[str, float | None]:
    broker.stop()
    time.sleep(seconds)
    broker.start()
    since = time.monotonic()
    watch = Watch(broker, since)
    watch.runtime.start()
    view_back: float | None = None
    end = since + timeout
    try:
        while time.monotonic() < end:
            if view_back is None and view.connected:
                view_back = time.monotonic() - since
            with watch.lock:
                done = len(watch.back) == len(COMPONENTS)
            if done and view_back is not None:
                break
            time.sleep(0.01)
        back = watch.wait_all(0)
    finally:
        watch.runtime.stop()
    result: dict[str, float | None] = {name: back.get(topic) for topic, name in COMPONENTS.items()}
    result["printmesh up's view"] = view_back
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outages", type=float, nargs="+", default=[3.0, 20.0, 40.0], help="seconds down, each")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the components after each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="printmesh-outage-") as tmp, LocalBroker() as broker:
        folder = Path(tmp)
        procs = start_processes(broker, folder)
        view = MqttRuntime(MqttConfig(host=broker.host, port=broker.port), "printmesh", "bench-view")
        view.start()
        try:
            wait_online(broker, 30)
            print("# back after a broker restart: seconds from the port being open again", flush=True)
            for seconds in args.outages:
                result = outage(broker, view, seconds, args.timeout)
                for name, back in result.items():
                    shown = f"{back:6.2f} s" if back is not None else f" never (>{args.timeout:g} s)"
                    print(f"outage {seconds:4.0f} s  {name:<20} back after {shown}", flush=True)
                worst = max((b for b in result.values() if b is not None), default=float("nan"))
                print(f"outage {seconds:4.0f} s  slowest              back after {worst:6.2f} s", flush=True)
                time.sleep(2)  # every component settled before the next outage
        finally:
            view.stop()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
