"""Previews: the camera agent's CPU and memory at 1 preview per second, and the sustained preview rate.

Starts mosquitto (printmesh_devkit.broker.LocalBroker) and, for each scenario, the real
``printmesh camera`` process; an observer client receives every preview. CPU is the
agent's utime + stime from /proc/<pid>/stat over the measured window (after a warm-up),
as a percentage of one core; memory is VmRSS at the end and VmHWM (peak) from
/proc/<pid>/status. Scenarios (1280x720 sources, previews 640 px wide, quality 70):

* ``idle``: a synthetic camera, previews off: the agent's floor;
* ``1fps synthetic``: synthetic camera emulating 15 fps, one preview per second;
* ``1fps mjpeg``: an MJPEG stream of 1280x720 at 15 fps served by this process on
  127.0.0.1, one preview per second. The agent reads (but does not decode) every frame
  of the stream to stay fresh: this is the cost of an mjpg-streamer/ustreamer camera;
* ``max synthetic``: unpaced synthetic camera, preview interval 0.05 s (the minimum):
  the sustained preview rate the agent reaches, and what it costs.

For comparison it also measures an idle ``python -c "import cv2, numpy, paho.mqtt.client"``.
Prints figures; asserts nothing.

    .venv/bin/python bench/camera_preview.py [--duration 60] [--max-duration 15]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import yaml

from printmesh_core.config import MqttConfig
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_devkit.broker import LocalBroker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakes.camera.stamp_server import StampServer

NODE = "benchprev"
VENV_BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
WARMUP = 3.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def memory_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


class Previews:
    def __init__(self, broker: LocalBroker) -> None:
        self.runtime = MqttRuntime(MqttConfig(host=broker.host, port=broker.port), "printmesh", "bench-preview")
        self.arrivals: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self.runtime.subscribe(f"printmesh/{NODE}/camera/+/preview", self._on, qos=0)
        self.runtime.start()
        assert self.runtime.wait_connected(10)

    def _on(self, message: Message) -> None:
        if message.payload:
            with self._lock:
                self.arrivals.append((time.monotonic(), len(message.payload)))

    def since(self, start: float) -> list[tuple[float, int]]:
        with self._lock:
            return [a for a in self.arrivals if a[0] >= start]


def scenario(
    broker: LocalBroker, previews: Previews, work: Path, camera: dict[str, Any], duration: float
) -> dict[str, Any]:
    cfg = work / f"{camera['name']}.yaml"
    cfg.write_text(yaml.safe_dump({"node_id": NODE, "camera": {"cameras": [camera]}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update(PRINTMESH_MQTT__HOST=broker.host, PRINTMESH_MQTT__PORT=str(broker.port), PRINTMESH_LOG_LEVEL="WARNING")
    agent = subprocess.Popen([str(VENV_BIN / "printmesh"), "camera", "-c", str(cfg)], env=env)
    try:
        time.sleep(WARMUP)
        start, cpu0 = time.monotonic(), cpu_seconds(agent.pid)
        time.sleep(duration)
        wall, cpu = time.monotonic() - start, cpu_seconds(agent.pid) - cpu0
        mem = memory_mb(agent.pid)
    finally:
        agent.terminate()
        agent.wait(10)
    got = previews.since(start)
    got = [g for g in got if g[0] <= start + wall]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(got)]
    return {
        "rate": len(got) / wall,
        "cpu": 100 * cpu / wall,
        "rss": mem.get("VmRSS", 0.0),
        "hwm": mem.get("VmHWM", 0.0),
        "gap_mean": statistics.fmean(gaps) if gaps else 0.0,
        "gap_sd": statistics.pstdev(gaps) if len(gaps) > 1 else 0.0,
        "gap_max": max(gaps) if gaps else 0.0,
        "size": statistics.fmean(g[1] for g in got) / 1024 if got else 0.0,
    }


def idle_python_rss() -> float:
    code = "import cv2, numpy, paho.mqtt.client, sys; print('ready', flush=True); sys.stdin.read()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return memory_mb(proc.pid)["VmRSS"]
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per 1 fps scenario")
    parser.add_argument("--max-duration", type=float, default=15.0, help="seconds measured for the max-rate scenario")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="printmesh-preview-bench-"))
    broker = LocalBroker(kind="mosquitto").start()
    previews = Previews(broker)
    stream = StampServer(fps=15, size=(1280, 720)).start()
    base = {"width": 1280, "height": 720, "preview": {"interval": 1.0}, "health_interval": 0}
    scenarios = {
        "idle (previews off)": ({**base, "name": "idle", "source": {"type": "synthetic", "fps": 15},
                                 "preview": {"interval": 0}}, args.duration),
        "1 fps, synthetic 15 fps": ({**base, "name": "syn", "source": {"type": "synthetic", "fps": 15}},
                                    args.duration),
        "1 fps, MJPEG 15 fps": ({**base, "name": "mjpeg", "source": {"type": "url", "url": stream.url("/stream")}},
                                args.duration),
        "max, synthetic unpaced": ({**base, "name": "max", "source": {"type": "synthetic", "fps": 0},
                                    "preview": {"interval": 0.05}}, args.max_duration),
    }  # fmt: skip
    results = {}
    try:
        for name, (camera, duration) in scenarios.items():
            results[name] = scenario(broker, previews, work, camera, duration)
        baseline = idle_python_rss()
    finally:
        stream.stop()
        previews.runtime.stop()
        broker.close()

    print(f"# camera previews: 1280x720 sources, previews 640 px wide, JPEG quality 70; "
          f"{args.duration:g} s per 1 fps scenario, {args.max_duration:g} s for max")  # fmt: skip
    print(
        f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, OpenCV {cv2.__version__}"
    )
    print(f"{'scenario':26s} {'previews/s':>10s} {'gap mean/sd/max s':>20s} {'KiB':>5s} {'CPU %':>6s} "
          f"{'RSS MB':>7s} {'peak MB':>8s}")  # fmt: skip
    for name, r in results.items():
        gaps = f"{r['gap_mean']:.3f}/{r['gap_sd']:.3f}/{r['gap_max']:.3f}" if r["rate"] else "-"
        print(f"{name:26s} {r['rate']:10.2f} {gaps:>20s} {r['size']:5.0f} {r['cpu']:6.1f} {r['rss']:7.1f} "
              f"{r['hwm']:8.1f}")  # fmt: skip
    print(f"idle python with cv2, numpy, paho imported: RSS {baseline:.1f} MB")


if __name__ == "__main__":
    main()
