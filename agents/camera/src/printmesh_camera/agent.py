"""The camera agent: routes capture requests and button presses to one worker per camera.

Topics (relative to ``<root>/<node>/camera``, see docs/topics.md, "Camera agent"):

* ``cmd/capture`` -> ``res/capture``: JSON request/response (core envelope);
* ``<camera>/capture/<capture_id>``: the JPEG, raw bytes, QoS 1, published before the response;
* ``<camera>/preview``: downscaled JPEG, raw bytes, retained;
* ``<camera>/availability``, ``<camera>/last_capture``: retained JSON;
* ``<camera>/press``: any payload starts a capture with a fresh id (Home Assistant's button).

No OpenCV import here: the workers load it when a camera opens.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from functools import partial

from printmesh_camera.config import CameraSettings
from printmesh_camera.entities import camera_entities
from printmesh_camera.follow import ROUTES as PRINTER_ROUTES
from printmesh_camera.follow import PrinterFeeds, PrinterFollower
from printmesh_camera.jobs import CaptureJob
from printmesh_camera.recent import RecentImages
from printmesh_camera.sources import make_source
from printmesh_camera.virtual_config import VirtualSourceConfig
from printmesh_camera.worker import CameraWorker
from printmesh_core import contract
from printmesh_core.agent import Agent
from printmesh_core.commands import Command, Reply, error
from printmesh_core.contract import RawRoute, Route
from printmesh_core.inbound import Rejected, screen
from printmesh_core.models.base import Payload
from printmesh_core.models.camera import CameraInfo, CamerasRequest, CamerasResult, CaptureRequest, CaptureResult
from printmesh_core.models.envelope import CommandRequest, CommandResponse
from printmesh_core.mqtt import Message
from printmesh_core.topics import TopicError, name_or_digest

log = logging.getLogger("printmesh.camera")


def capture_id_for(request_id: str) -> str:
    """The request id itself when it is a safe name (one topic level and one path component:
    ``topics.is_name``, so not '.', '..' or hidden), so requesters know the image topic in
    advance; otherwise a stable digest of it (``id-`` + 20 hex digits)."""
    return name_or_digest(request_id, "id-")


class CameraAgent(Agent):
    component = "camera"

    def __init__(self, settings: CameraSettings) -> None:
        self.cameras = {c.name: c for c in settings.camera.cameras}
        super().__init__(settings)
        # the printers virtual cameras follow, fed from their bridges' topics
        self.printers = PrinterFeeds()
        for cfg in self.cameras.values():
            if isinstance(cfg.source, VirtualSourceConfig):
                self.printers.follower(cfg.source.printer)
        factory = partial(make_source, feeds=self.printers)
        self.workers = {name: CameraWorker(cfg, self, factory) for name, cfg in self.cameras.items()}
        self._press_ids = itertools.count(1)
        self.recent = RecentImages()

    # ------------------------------------------------------------ topics
    def absolute_of(self, route: RawRoute, camera: str, *names: str) -> str:
        return self.topics.absolute(route.topic(self.me, camera, *names))

    # ------------------------------------------------------ Sink (workers)
    def image(self, camera: str, capture_id: str, jpeg: bytes, correlation_data: bytes | None) -> str:
        topic = self.absolute_of(contract.CAMERA_IMAGE, camera, capture_id)
        self.runtime.publish_absolute(topic, jpeg, qos=1, correlation_data=correlation_data)
        self.recent.keep(topic, jpeg)
        return topic

    def _image_again(
        self, request: CommandRequest, earlier: CommandResponse, message: Message
    ) -> CommandResponse | None:
        """A repeated capture request: the image it captured goes out again, before the first answer.

        An image no longer kept (``recent.py``) cannot be: the repeat is answered ``image_not_kept``
        instead, so the requester fails or retries that point now, with a new id, rather than wait
        for an image that will not come until its own deadline."""
        if not earlier.ok or not earlier.data:
            return None  # the capture failed: there is no image to send again
        topic = earlier.data.get("topic")
        jpeg = self.recent.get(topic) if isinstance(topic, str) else None
        if jpeg is None:
            log.warning("repeated capture %s: its image is no longer kept; answered image_not_kept", request.id)
            return error(request.id, "image_not_kept", f"capture {request.id} ran once and its image was sent then; "
                         f"it is no longer kept here (the last {self.recent.count} images are): ask again with a "
                         "new id for a new image")  # fmt: skip
        assert isinstance(topic, str)  # a kept image has its topic
        self.runtime.publish_absolute(topic, jpeg, qos=1, correlation_data=message.correlation_data)
        log.info("repeated capture %s: its image sent again on %s (%d bytes; not captured again)", request.id,
                 topic, len(jpeg))  # fmt: skip
        return None

    def preview(self, camera: str, jpeg: bytes) -> None:
        preview = contract.CAMERA_PREVIEW
        self.runtime.publish(preview.topic(self.me, camera), jpeg, qos=preview.qos, retain=preview.retain)

    def availability(self, camera: str, online: bool, reason: str | None) -> None:
        self.publish_availability(contract.CAMERA_AVAILABILITY.topic(self.me, camera), online, reason)

    def captured(self, result: CaptureResult) -> None:
        self.publish_state(contract.CAMERA_LAST_CAPTURE.topic(self.me, result.camera), result)

    # ----------------------------------------------------------- commands
    def commands(self) -> list[Command]:
        return [
            # deferred: the camera's own thread answers, so a slow camera never holds a pool thread
            Command(contract.CAPTURE.name, contract.CAPTURE.request, self._dispatch_message, deferred=True,
                    description="Capture a fresh JPEG; it goes to <camera>/capture/<capture_id>, then the answer.",
                    on_repeat=self._image_again),
            Command(contract.CAMERAS.name, contract.CAMERAS.request, self._cameras, inline=True,
                    description="List the cameras, their state and topics."),
        ]  # fmt: skip

    def _dispatch_message(self, request: CommandRequest, message: Message | None, reply: Reply) -> None:
        assert isinstance(request, CaptureRequest)
        self.dispatch(request, message, reply)

    def dispatch(self, request: CaptureRequest, message: Message | None, reply: Reply) -> None:
        """Queue a capture on its camera's thread; anything that cannot be queued is answered now."""
        received = time.monotonic()
        name = request.camera
        if name is None:
            if len(self.workers) != 1:
                reply(error(request.id, "invalid_request",
                            f"camera: required with {len(self.workers)} cameras ({self._names()})"))  # fmt: skip
                return
            name = next(iter(self.workers))
        worker = self.workers.get(name)
        if worker is None:
            reply(error(request.id, "unknown_camera", f"no camera {name!r} here; cameras: {self._names()}"))
            return
        job = CaptureJob(request, capture_id_for(request.id), received, reply,
                         message.correlation_data if message else None)  # fmt: skip
        refused = worker.submit(job)
        if refused is not None:
            reply(refused)

    def _names(self) -> str:
        return ", ".join(self.workers) or "none configured"

    def _cameras(self, request: CamerasRequest) -> CamerasResult:
        infos = []
        for name, worker in self.workers.items():
            cfg = worker.config
            size = worker.frame_size
            infos.append(CameraInfo(
                name=name, title=cfg.display, source=worker.description,
                state="online" if worker.online else "offline", reason=worker.reason,
                width=size[0] if size else None, height=size[1] if size else None,
                preview_interval=cfg.preview.interval, captures=worker.captures, failures=worker.failures,
                pending=worker.pending, preview_topic=self.absolute_of(contract.CAMERA_PREVIEW, name),
                capture_topic=self.topics.absolute(contract.CAMERA_IMAGE.filter(self.me, name)),
                press_topic=self.absolute_of(contract.CAMERA_PRESS, name),
            ))  # fmt: skip
        return CamerasResult(cameras=infos)

    # ------------------------------------------------------------ presses
    def attach(self) -> None:
        contract.CAMERA_PRESS.subscribe_raw(self.runtime, self.me, self._on_press)
        self.runtime.subscribe_relative(contract.CAMERA_AVAILABILITY.filter(self.me), self._on_availability, qos=1)
        for node in self.printers.nodes:
            follower = self.printers.follower(node)
            printer = contract.component(self.topics, contract.PRINTER, node)
            for route in PRINTER_ROUTES:
                self.runtime.subscribe_relative(route.topic(printer), partial(self._on_printer, follower, route), qos=1)

    @staticmethod
    def _on_printer(follower: PrinterFollower, route: Route[Payload], message: Message) -> None:
        refused = follower.feed(route, message.payload)
        if refused is not None:
            raise refused  # counted and logged by the runtime

    def _camera_of(self, message: Message) -> str:
        relative = self.topics.relative(message.topic) or ""
        return relative.split("/")[-2] if relative.count("/") >= 3 else ""

    def _on_press(self, message: Message) -> None:
        """A button press (any payload) is a capture with a fresh id; a JSON object may add a label."""
        name = self._camera_of(message)
        if message.retain:
            raise Rejected("ignoring retained press: presses must never be retained")
        if name not in self.workers:
            raise Rejected(f"a press for unknown camera {name[:64]!r}")
        label = None
        try:
            screen(message.payload, contract.CAMERA_PRESS.limit)
            doc = json.loads(message.payload)
            if isinstance(doc, dict) and isinstance(doc.get("label"), str):
                label = doc["label"][:200]
        except (Rejected, ValueError):
            pass  # any payload presses the button; only a JSON object's label is kept
        request_id = f"press-{time.time_ns() // 1_000_000}-{next(self._press_ids)}"
        request = CaptureRequest(id=request_id, camera=name, label=label)
        self.dispatch(
            request, None, lambda response: self.runtime.publish(contract.CAPTURE.res(self.me), response, qos=1)
        )

    def _on_availability(self, message: Message) -> None:
        """Clear the retained topics of a camera that is no longer configured."""
        name = self._camera_of(message)
        if not message.retain or not message.payload or name in self.cameras:
            return
        log.info("clearing the retained topics of removed camera %r", name)
        for route in contract.CAMERA_RETAINED:
            try:
                self.runtime.publish(route.topic(self.me, name), b"", qos=1, retain=True)
            except TopicError as exc:
                log.warning("cannot clear %s of %r: %s", route.levels[-1], name, exc)
                return

    # ------------------------------------------------------------ running
    def loop(self) -> None:
        if not self.workers:
            log.warning("no cameras configured (camera.cameras is empty): nothing to do")
        entities = []
        for name, cfg in self.cameras.items():
            routes = (*contract.CAMERA_RETAINED, contract.CAMERA_PRESS)
            topics = {route.levels[-1]: self.absolute_of(route, name) for route in routes}
            entities += camera_entities(cfg, topics)
        self.announce(entities)
        for worker in self.workers.values():
            worker.start()
        self.stopping.wait()
        for worker in self.workers.values():
            worker.request_stop()
        for worker in self.workers.values():
            worker.join()
        for name in self.workers:
            self.availability(name, False, "agent stopped")
