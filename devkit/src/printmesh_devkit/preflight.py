"""What ``printmesh up`` checks on the broker before it prints anything.

* The broker carries the largest message the configured cameras can send: a capture is one
  raw JPEG of width x height, QoS 1. A broker with a smaller packet limit drops the camera's
  connection at the first capture (that is how the iotcore broker failed the demo), so the
  job would print with 0 images; ``up`` refuses instead, in one line.
* No live node already uses this job's node id: a retained ``online`` status is only a claim;
  the owner is alive when it answers a command (any answer, even ``unknown_command``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from printmesh_core import contract
from printmesh_core.config import AgentSettings, MqttConfig, read_yaml
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import Topics, join

DEFAULT_CAPTURE = (1920, 1080)  # a camera without width/height: assume a 1080p device
JPEG_HEADERS = 4096
PROBE = "printmesh-up-probe"  # a command no component has: any live one answers unknown_command


class PreflightError(RuntimeError):
    """One line for the user: what is wrong and what to install or configure."""


def jpeg_upper_bound(width: int, height: int) -> int:
    """A JPEG of width x height is never larger than its raw RGB pixels plus headers."""
    return width * height * 3 + JPEG_HEADERS


def largest_capture(config: Path | None) -> tuple[int, str]:
    """(bytes, which camera) of the largest capture the config's cameras can publish; (0, '') without cameras."""
    section = read_yaml(config).get("camera") if config else None
    cameras = section.get("cameras") if isinstance(section, dict) else None
    best = (0, "")
    for camera in cameras if isinstance(cameras, list) else []:
        if not isinstance(camera, dict):
            continue
        width, height = camera.get("width"), camera.get("height")
        if not isinstance(width, int) or not isinstance(height, int):
            w0, h0 = DEFAULT_CAPTURE
            width, height = (width, width * h0 // w0) if isinstance(width, int) else (w0, h0)
        size = jpeg_upper_bound(width, height)
        if size > best[0]:
            best = (size, f"camera {camera.get('name')!r} at {width}x{height}")
    return best


@contextmanager
def quiet_runtime() -> Iterator[None]:
    """The runtime's own reconnect warnings would bury the one line ``up`` prints."""
    logger = logging.getLogger("printmesh.mqtt")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _runtime(mqtt: MqttConfig, root: str, purpose: str) -> MqttRuntime:
    """MQTT 3.1.1 on purpose: a message then carries the retain flag only when it was stored before we subscribed."""
    config = mqtt.model_copy(update={"protocol": "3.1.1"})
    return MqttRuntime(config, root, f"printmesh-up-{purpose}-{os.getpid()}")


def connect(mqtt: MqttConfig, root: str, purpose: str, timeout: float = 5.0) -> MqttRuntime:
    rt = _runtime(mqtt, root, purpose)
    rt.start()
    if not rt.wait_connected(timeout):
        rt.stop(0.5)
        raise PreflightError(
            f"cannot connect to the broker at {mqtt.where} within {timeout:.0f} s "
            "(install mosquitto: sudo apt-get install mosquitto, or set mqtt.host in the config)"
        )
    return rt


def check_round_trip(mqtt: MqttConfig, root: str, size: int, what: str, timeout: float = 10.0) -> None:
    """Publish ``size`` bytes at QoS 1 and wait for them to come back; raises PreflightError if they do not."""
    rt = connect(mqtt, root, "preflight")
    try:
        topic = join(root, contract.PREFLIGHT, uuid.uuid4().hex)
        back = threading.Event()
        rt.subscribe(topic, lambda m: back.set() if len(m.payload) == size else None, qos=1, wait=timeout)
        rt.publish_absolute(topic, b"\xff" * size, qos=1)
        deadline = time.monotonic() + timeout
        while not back.wait(0.05) and rt.connected and time.monotonic() < deadline:
            pass  # a broker that refuses the packet closes the connection: no need to wait the full time
        if not back.is_set():
            raise PreflightError(
                f"the broker at {mqtt.where} does not carry a {size}-byte message ({what}): "
                f"use mosquitto (sudo apt-get install mosquitto) with max_packet_size unset or above {size + 1024}"
            )
    finally:
        rt.stop(0.5)


def _online(message: Message) -> bool:
    presence = contract.read_presence(message.payload)  # the contract's one status parser
    return presence is not None and presence.state == "online"


def live_owner(mqtt: MqttConfig, settings: AgentSettings, wait: float = 1.0, answer: float = 2.0) -> str | None:
    """The first component under our node id that claims ``online`` and answers a command, or None."""
    topics = Topics(settings.topic_root, settings.node_id)
    rt = connect(mqtt, settings.topic_root, "owner")
    claims: list[str] = []
    try:
        status = threading.Event()
        filt = topics.absolute(contract.STATUS.filter(contract.wildcard(node=settings.node_id)))

        def on_status(m: Message) -> None:
            if m.payload and _online(m):
                claims.append(m.topic.split("/")[-2])
            status.set()

        rt.subscribe(filt, on_status, qos=1, wait=wait)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:  # retained claims come in one burst right after the subscription
            if not status.wait(0.3):
                break
            status.clear()
        for component in dict.fromkeys(claims):
            if _answers(rt, topics, component, answer):
                return component
        return None
    finally:
        rt.stop(0.5)


def _answers(rt: MqttRuntime, topics: Topics, component: str, timeout: float) -> bool:
    target = topics.component(component)
    rid = uuid.uuid4().hex
    answered = threading.Event()

    def on_response(m: Message) -> None:
        try:
            if contract.read(CommandResponse, m.payload).id == rid:
                answered.set()
        except contract.Unreadable:
            pass

    rt.subscribe(topics.absolute(target.res(PROBE)), on_response, qos=1, wait=timeout)
    rt.publish(target.cmd(PROBE), json.dumps({"id": rid}), qos=1)
    return answered.wait(timeout)
