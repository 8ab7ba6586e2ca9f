"""The dashboard's shell: its subscriptions on the plugin's one MQTT client, a worker, the images.

paho's thread only files each message away (the latest payload per topic; JPEGs in a
bounded store) and returns. While no page has the tab open nothing is parsed or sent.
While one is, the worker parses what arrived, builds the changed sections and sends
their patches as one plugin message, at most twice a second per section. Nothing here
runs on OctoPrint's comm or event threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from octoprint_printmesh.dashboard import capture_view, sections
from octoprint_printmesh.dashboard.coalescer import Coalescer, Viewers
from octoprint_printmesh.dashboard.model import MeshModel
from octoprint_printmesh.dashboard.watches import classify
from printmesh_core.bounded import Bounded
from printmesh_core.messages import Message
from printmesh_core.mqtt import MqttRuntime

log = logging.getLogger("octoprint.plugins.printmesh.dashboard")
IMAGES_KEPT = 64  # capture JPEGs kept for the latest grids (a 3x3 grid with two cameras is 18)
PREVIEWS_KEPT = 64  # cameras whose latest preview is kept: anyone can invent camera names
PENDING_KEPT = 4096  # topics waiting to be parsed while nobody watches: anyone can invent topics
PREVIEW_MARK = b"jpeg"
IDLE_WAIT = 5.0  # seconds the worker sleeps when nothing is due (a page announcing wakes it)

Send = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Urls:
    """Where the page fetches images (the plugin's routes), given (node, camera or capture id)."""

    preview: Callable[[str, str], str]
    image: Callable[[str, str], str]


class Dashboard:
    def __init__(self, runtime: MqttRuntime, root: str, me: str, send: Send, urls: Urls,
                 margin: float = 5.0, max_z: float | None = None) -> None:  # fmt: skip
        self.runtime, self.root, self.send, self.urls = runtime, root, send, urls
        self.margin, self.max_z = margin, max_z
        self.model = MeshModel(me)
        self.coalescer = Coalescer()
        self.viewers = Viewers()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._evictions = runtime.evictions  # a flood of invented names is bounded, and counted in the status
        self._pending = self._new_pending()  # topic -> latest (payload, at, retained)
        self._previews: Bounded[tuple[str, str], bytes] = Bounded(PREVIEWS_KEPT, "dashboard_previews", self._evictions)
        self._images: Bounded[tuple[str, str], bytes] = Bounded(IMAGES_KEPT, "dashboard_images", self._evictions)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="printmesh-dashboard", daemon=True)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.subscribe()
        self._thread.start()

    def subscribe(self) -> None:
        """Once: every watched route; the runtime restores them on every connect."""
        for watch in self.model.table:
            self.runtime.subscribe_relative(watch.filter, self._on_message, qos=watch.qos)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(2)

    # ---------------------------------------------------------- paho's thread
    def _on_message(self, message: Message) -> None:
        topic = message.topic[len(self.root) + 1 :]
        seen = classify(self.model.table, topic) if topic.endswith("/preview") or "/capture/" in topic else None
        at = time.time()
        with self._lock:
            if seen is not None and seen.kind == "image":
                self._images.put((seen.node, seen.names[-1]), message.payload)
                return
            payload = message.payload
            if seen is not None and seen.kind == "preview":
                self._previews.put((seen.node, seen.names[0]), payload)
                payload = PREVIEW_MARK if payload else b""  # the model only needs to know one arrived
            self._pending.put(topic, (payload, at, message.retain))
            if self.viewers.seen:
                self._wake.set()

    # ------------------------------------------------- OctoPrint's HTTP threads
    def watch(self, client: str, full: bool) -> dict[str, Any] | None:
        """A page has the tab open (it repeats this while visible); with ``full``, every section now."""
        now = time.time()
        with self._lock:
            self.viewers.touch(client, now)
            if not full:
                self._wake.set()
                return None
            self._drain(now)
            built = {key: self._section(key) for key in sorted(self.model.section_keys())}
            snapshot = {key: value for key, value in built.items() if value is not None}
            for key, value in snapshot.items():  # later patches are relative to what this page has
                self.coalescer.sent.setdefault(key, value)
        self._wake.set()
        return {"now": now, "sections": snapshot}

    def leave(self, client: str) -> None:
        with self._lock:
            self.viewers.leave(client)

    def preview(self, node: str, camera: str) -> bytes | None:
        with self._lock:
            return self._previews.peek((node, camera))

    def image(self, node: str, capture_id: str) -> bytes | None:
        with self._lock:
            return self._images.peek((node, capture_id))

    def shell_outputs(self) -> list[dict[str, Any]]:
        """Every host's shell command results; the caller checks the user's permission first."""
        with self._lock:
            self._drain(time.time())
            shells = sorted(self.model.shells.items())
            hosts = {node: p for (node, c), p in self.model.presence.items() if c == "host"}
        out = []
        for (node, name), result in shells:
            online = hosts[node].online if node in hosts else True
            out.append({"node": node, "name": name, "online": online, "ts": result.ts,
                        "exit_code": result.exit_code, "stdout": result.stdout if online else "",
                        "stderr": result.stderr if online else "", "error": result.error,
                        "timed_out": result.timed_out})  # fmt: skip
        return out

    # ------------------------------------------------------------ the worker
    def _drain(self, now: float) -> None:
        """Parse what arrived (under the lock)."""
        pending, self._pending = self._pending, self._new_pending()
        for topic, (payload, at, retained) in pending.items():
            self.coalescer.mark(self.model.apply(topic, payload, at, retained))

    def _new_pending(self) -> Bounded[str, tuple[bytes, float, bool]]:
        return Bounded(PENDING_KEPT, "dashboard_pending", self._evictions)

    def _section(self, key: str) -> dict[str, Any] | None:
        m = self.model
        kind, _, rest = key.partition(":")
        node, _, name = rest.partition("/")
        if kind == "host":
            return sections.host(m, node) if node in m.hosts or (node, "host") in m.presence else None
        if kind == "sensor":
            return sections.sensor(m, node, name) if (node, name) in m.sensor_keys() else None
        if kind == "camera":
            return sections.camera(m, node, name, self.urls.preview) if (node, name) in m.cameras else None
        if kind == "capture":
            return capture_view.capture(m, self.margin, self.max_z, self._image_url)
        builders: dict[str, Callable[[MeshModel], dict[str, Any]]] = {
            "printer": sections.printer, "heat": sections.heat, "job": sections.job,
            "layer_times": sections.layer_times, "nodes": sections.nodes, "shells": sections.shells,
        }  # fmt: skip
        return builders[kind](m) if kind in builders else None

    def _image_url(self, node: str, capture_id: str) -> str | None:
        return self.urls.image(node, capture_id) if (node, capture_id) in self._images else None

    def _run(self) -> None:
        while not self._stopped:
            with self._lock:
                wait = self._step(time.time())
            self._wake.wait(IDLE_WAIT if wait is None else wait)
            self._wake.clear()

    def _step(self, now: float) -> float | None:
        """One round (under the lock): the patches now due go out; the wait until the next."""
        if not self.viewers.active(now):
            self.coalescer.reset()
            return None
        self._drain(now)
        patch: dict[str, Any] = {}  # key -> changed fields, or None: the section is gone
        full: dict[str, Any] = {}  # key -> a section the pages have not had yet
        for key in self.coalescer.due(now):
            known = key in self.coalescer.sent
            change = self.coalescer.take(key, self._section(key), now)
            if change is not None:
                (patch if known else full)[key] = change if change or key in self.coalescer.sent else None
        if patch or full:
            try:
                self.send({"dash": {"now": now, "patch": patch, "set": full}})
            except Exception:
                log.exception("could not send the dashboard's update")
        return self.coalescer.next_due(now)
