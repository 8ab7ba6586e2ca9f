"""Shared by the camera agent tests: configs, a capture round trip, and image verification."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from printmesh_camera.framecode import Stamp, decode, draw
from printmesh_core.models.camera import CaptureResult

NODE = "camnode"
BASE = f"printmesh/{NODE}/camera"


def config(*cameras: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"node_id": NODE, "camera": {"cameras": list(cameras)}, **extra}


def synthetic(name: str = "bed", fps: float = 0, **camera: Any) -> dict[str, Any]:
    """A synthetic camera, previews off unless asked (tests look at captures)."""
    return {"name": name, "source": {"type": "synthetic", "fps": fps}, "preview": {"interval": 0}, **camera}


@dataclass
class Captured:
    response: dict[str, Any]
    image: bytes | None = None
    image_index: int = -1
    response_index: int = -1
    correlation_data: bytes | None = None

    @property
    def ok(self) -> bool:
        return bool(self.response["ok"])

    @property
    def result(self) -> CaptureResult:
        return CaptureResult.model_validate(self.response["data"])

    @property
    def error(self) -> str:
        return str(self.response["error"]["message"]) if self.response.get("error") else ""


def wait_online(observer: Any, name: str = "bed", after: int = 0, timeout: float = 15) -> dict[str, Any]:
    return observer.topic(f"{BASE}/{name}/availability", after=after, timeout=timeout,
                          where=lambda d: d["state"] == "online")  # fmt: skip


def send(observer: Any, body: dict[str, Any] | str) -> None:
    observer.publish(f"{BASE}/cmd/capture", body if isinstance(body, str) else json.dumps(body))


def collect(observer: Any, request_id: str, after: int, timeout: float = 15) -> Captured:
    """The response to ``request_id`` and, if it succeeded, its image as the requester saw them."""
    resp = observer.wait_for(
        lambda m: m.topic == f"{BASE}/res/capture" and json.loads(m.payload).get("id") == request_id, timeout, after
    )
    with observer.cond:
        messages = list(observer.messages)
    captured = Captured(json.loads(resp.payload), response_index=messages.index(resp))
    if captured.ok:
        topic = captured.response["data"]["topic"]
        for index, m in enumerate(messages[after:], start=after):
            if m.topic == topic:
                captured.image, captured.image_index, captured.correlation_data = m.payload, index, m.correlation_data
                break
    return captured


def capture(observer: Any, timeout: float = 15, **body: Any) -> Captured:
    mark = observer.mark()
    send(observer, body)
    return collect(observer, str(body["id"]), mark, timeout)


def verify(captured: Captured) -> tuple[np.ndarray, Stamp | None]:
    """Decode the JPEG with OpenCV; its size, sha256 and dimensions must match the metadata."""
    assert captured.ok, captured.response
    assert captured.image is not None, "the image never arrived"
    assert 0 <= captured.image_index < captured.response_index, "the image must be published before the response"
    meta = captured.result
    assert len(captured.image) == meta.size
    assert hashlib.sha256(captured.image).hexdigest() == meta.sha256
    image = cv2.imdecode(np.frombuffer(captured.image, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    assert image.shape[:2] == (meta.height, meta.width)
    return image, decode(image)


def retained(broker: Any, topic: str, timeout: float = 2.0) -> bytes | None:
    r = subprocess.run(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-C", "1", "-W", str(int(timeout)),
         "--retained-only", "-N"],
        capture_output=True,
    )  # fmt: skip
    return r.stdout if r.returncode == 0 else None


def write_video(path: Path, frames: int = 40, fps: float = 10.0, size: tuple[int, int] = (320, 240)) -> Path:
    """A MJPG AVI written by cv2.VideoWriter; frame i carries the stamp (i, i s, 'file frame i')."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 40, np.uint8)
        draw(image, Stamp(i, float(i), f"file frame {i}"))
        writer.write(image)
    writer.release()
    return path
