"""Capture latency through the camera agent vs a raw grab + imencode of the same source, same run.

One mosquitto (printmesh_devkit.broker.LocalBroker) and the real ``printmesh camera`` process
with two 1280x720 cameras:

* ``synthetic``: the synthetic source, unpaced (``fps: 0``: a frame is rendered at once);
* ``file``: a 1280x720 MJPG AVI written here with cv2.VideoWriter, read frame after frame
  (``realtime: false``), so every capture decodes one frame, like a camera delivering one.

Measured, alternating in blocks so machine noise hits both sides:

* ``agent``: request published (printmesh MqttRuntime, QoS 1) -> JPEG received by that
  requester on ``camera/<name>/capture/<id>``. Includes MQTT both ways, the agent's parsing,
  queueing, orientation, JPEG encoding, and the broker relaying ~40 kB. ``response``: the
  same request -> the response envelope (published right after the JPEG) received.
* ``raw``: in this process, the same source's grab and ``cv2.imencode`` (quality 85) at
  1280x720: ``SyntheticSource.read()`` for the synthetic camera, ``cv2.VideoCapture.read()``
  on the same file for the file camera. No MQTT at all.

Prints p50/p90/p99/mean per variant and the agent/raw ratios (goal: p50 ratio <= 1.25).
Asserts nothing.

    .venv/bin/python bench/camera_latency.py [-n 300] [--warmup 30] [--block 20] [--broker localbroker|nagle]
                                             [--request-qos 0|1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from printmesh_camera.config import SyntheticSourceConfig
from printmesh_camera.sources.base import SizeHint
from printmesh_camera.sources.synthetic import SyntheticSource
from printmesh_core.config import MqttConfig
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_devkit.broker import LocalBroker

NODE = "benchcam"
BASE = f"printmesh/{NODE}/camera"
SIZE = (1280, 720)
QUALITY = 85
VENV_BIN = Path(sys.executable).parent


def write_video(path: Path, frames: int = 90) -> Path:
    """A 1280x720 MJPG file of synthetic frames (moving block, text, stamp): realistic JPEG sizes."""
    src = SyntheticSource(SyntheticSourceConfig(type="synthetic", fps=0), SizeHint(*SIZE))
    src.open()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30, SIZE)
    for _ in range(frames):
        writer.write(src.read(time.monotonic()).image)
    writer.release()
    return path


class Requester:
    """Publishes capture requests; times the arrival of the JPEG and of the response envelope."""

    def __init__(self, broker: LocalBroker, qos: int) -> None:
        self.qos = qos
        self.runtime = MqttRuntime(MqttConfig(host=broker.host, port=broker.port), "printmesh", "bench-requester")
        self._pending: dict[str, tuple[threading.Event, dict[str, float]]] = {}
        self.sizes: list[int] = []
        self.runtime.subscribe(f"{BASE}/+/capture/+", self._on_image, qos=1)
        self.runtime.subscribe(f"{BASE}/res/capture", self._on_response, qos=1)
        self.runtime.start()
        assert self.runtime.wait_connected(10), "requester cannot connect"

    def _arrived(self, rid: str, what: str) -> None:
        entry = self._pending.get(rid)
        if entry is not None:
            entry[1][what] = time.perf_counter()
            if len(entry[1]) == 2:
                entry[0].set()

    def _on_image(self, message: Message) -> None:
        self.sizes.append(len(message.payload))
        self._arrived(message.topic.rsplit("/", 1)[-1], "image")

    def _on_response(self, message: Message) -> None:
        self._arrived(json.loads(message.payload)["id"], "response")

    def capture(self, camera: str, rid: str) -> tuple[float, float]:
        """(seconds until the JPEG arrived, seconds until the response arrived)."""
        event, arrivals = threading.Event(), dict[str, float]()
        self._pending[rid] = (event, arrivals)
        started = time.perf_counter()
        self.runtime.publish(f"{NODE}/camera/cmd/capture", json.dumps({"id": rid, "camera": camera}), qos=self.qos)
        if not event.wait(10):
            raise TimeoutError(f"no image and response for {rid}")
        del self._pending[rid]
        return arrivals["image"] - started, arrivals["response"] - started


class RawFile:
    def __init__(self, path: Path) -> None:
        self.cap = cv2.VideoCapture(str(path))

    def grab_encode(self) -> int:
        ok, image = self.cap.read()
        if not ok:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.cap.read()
        _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        return len(buf)


class RawSynthetic:
    def __init__(self) -> None:
        self.src = SyntheticSource(SyntheticSourceConfig(type="synthetic", fps=0), SizeHint(*SIZE))
        self.src.open()

    def grab_encode(self) -> int:
        image = self.src.read(time.monotonic()).image
        _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        return len(buf)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"p50 {pct(ms, 50):6.2f}  p90 {pct(ms, 90):6.2f}  p99 {pct(ms, 99):6.2f}  "
            f"mean {statistics.fmean(ms):6.2f}  max {max(ms):6.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=300, help="measured captures per variant")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument(
        "--broker",
        choices=["localbroker", "nagle"],
        default="localbroker",
        help="localbroker: LocalBroker as shipped (set_tcp_nodelay true); nagle: set_tcp_nodelay false, "
        "mosquitto's own default",
    )
    parser.add_argument("--request-qos", type=int, choices=[0, 1], default=1, help="QoS of the capture requests")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="printmesh-camera-bench-"))
    video = write_video(work / "bench.avi")
    extra = ["set_tcp_nodelay false"] if args.broker == "nagle" else []
    broker = LocalBroker(kind="mosquitto", extra=extra).start()
    cameras = [
        {"name": "synthetic", "source": {"type": "synthetic", "fps": 0}, "width": SIZE[0], "height": SIZE[1],
         "quality": QUALITY, "preview": {"interval": 0}, "health_interval": 0},
        {"name": "file", "source": {"type": "file", "path": str(video), "realtime": False}, "quality": QUALITY,
         "preview": {"interval": 0}, "health_interval": 0},
    ]  # fmt: skip
    cfg = work / "camera.yaml"
    cfg.write_text(yaml.safe_dump({"node_id": NODE, "camera": {"cameras": cameras}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update(PRINTMESH_MQTT__HOST=broker.host, PRINTMESH_MQTT__PORT=str(broker.port), PRINTMESH_LOG_LEVEL="WARNING")
    agent = subprocess.Popen([str(VENV_BIN / "printmesh"), "camera", "-c", str(cfg)], env=env)
    requester = Requester(broker, args.request_qos)
    raw: dict[str, RawSynthetic | RawFile] = {"synthetic": RawSynthetic(), "file": RawFile(video)}
    try:
        time.sleep(1.5)  # cameras open
        results: dict[str, list[float]] = {}
        counter = 0
        for camera in ("synthetic", "file"):
            for i in range(args.warmup):
                requester.capture(camera, f"w{camera}{i}")
                raw[camera].grab_encode()
            agent_times: list[float] = []
            response_times: list[float] = []
            raw_times: list[float] = []
            while len(agent_times) < args.n:
                for _ in range(args.block):
                    counter += 1
                    image_s, response_s = requester.capture(camera, f"c{counter}")
                    agent_times.append(image_s)
                    response_times.append(response_s)
                for _ in range(args.block):
                    started = time.perf_counter()
                    raw[camera].grab_encode()
                    raw_times.append(time.perf_counter() - started)
            results[f"{camera} agent"] = agent_times[: args.n]
            results[f"{camera} raw"] = raw_times[: args.n]
            results[f"{camera} response"] = response_times[: args.n]
    finally:
        requester.runtime.stop()
        agent.terminate()
        agent.wait(10)
        broker.close()

    print(f"# camera capture latency, 1280x720, JPEG quality {QUALITY}; {args.n} per variant, blocks of {args.block}")
    print(
        f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"OpenCV {cv2.__version__}, numpy {np.__version__}, broker {args.broker}, request QoS {args.request_qos}"
    )
    print(f"# mean JPEG size through MQTT: {statistics.fmean(requester.sizes) / 1024:.0f} KiB")
    for name, values in results.items():
        print(f"{name:18s} {summary(values)}")
    for camera in ("synthetic", "file"):
        a, r = results[f"{camera} agent"], results[f"{camera} raw"]
        print(f"{camera:9s} ratio agent/raw: p50 {pct(a, 50) / pct(r, 50):.2f}  p99 {pct(a, 99) / pct(r, 99):.2f}  "
              f"(goal p50 <= 1.25)")  # fmt: skip


if __name__ == "__main__":
    main()
