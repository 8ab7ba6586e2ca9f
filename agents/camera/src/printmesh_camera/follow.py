"""What the virtual camera knows of a printer, from the bridge's topics.

The agent subscribes to ``<printer>/printer/{job,layers,layer_progress,layer,hold,event}`` and feeds
each message here (MQTT thread); the virtual source reads a snapshot (camera thread).
Messages of another process are read tolerantly: unknown fields are dropped, and a
malformed message is logged and ignored, never fatal.

Which file: the latest of the job's ``file_path``, the layer table's and the layer
events' ``path`` (the job topic comes every 5 s; the layer table as the print starts).

Where the head is during a hold: ``hold.head`` when the bridge reports it, else the
position of the hold's last ``moved`` event on ``<printer>/printer/event``, else the origin.

Layers printed: the bridge holds a print on the first line of layer N, before any of it
is sent, so during a hold at the current layer the part has N - 1 layers; otherwise the
current layer counts as printed (what a camera sees mid-layer is close to it).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import LayerProgress, Point, PrinterEvent, PrinterHold, PrinterJob

log = logging.getLogger("printmesh.camera")

LEAVES = ("job", "layers", "layer_progress", "layer", "hold", "event")
M = TypeVar("M", bound=BaseModel)


def tolerant(model: type[M], doc: dict[str, Any]) -> M:
    """``model`` from another process's message: fields this version does not know are dropped."""
    return model.model_validate({k: v for k, v in doc.items() if k in model.model_fields})


@dataclass(frozen=True)
class PrinterView:
    file_path: str | None = None
    file_origin: str | None = None
    layers: int = 0
    head: tuple[float, float, float] | None = None


def _point(value: Any) -> tuple[float, float, float] | None:
    if not isinstance(value, dict):
        return None
    try:
        p = tolerant(Point, value)
    except ValidationError:
        return None
    return (p.x, p.y, p.z)


class PrinterFollower:
    """The state of one printer as its bridge publishes it."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._lock = threading.Lock()
        self._job: PrinterJob | None = None
        self._current = 0
        self._hold: PrinterHold | None = None
        self._head: tuple[float, float, float] | None = None
        self._moved: tuple[float, float, float] | None = None  # last "moved" event of this hold
        self._file: tuple[str, str | None] | None = None  # (storage path, origin), latest that named one

    def feed(self, leaf: str, payload: bytes) -> None:
        """One message of ``<printer>/printer/<leaf>``; an empty payload clears a retained value."""
        try:
            doc = json.loads(payload) if payload else None
            if doc is not None and not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            with self._lock:
                self._apply(leaf, doc)
        except (ValueError, ValidationError) as exc:
            log.warning("printer %s: ignoring malformed %s message: %s", self.node, leaf, str(exc).splitlines()[0])

    def _apply(self, leaf: str, doc: dict[str, Any] | None) -> None:
        if leaf == "job":
            self._job = tolerant(PrinterJob, doc) if doc else None
            if self._job is not None and self._job.file_path:
                self._file = (self._job.file_path, self._job.file_origin)
        elif leaf == "layers" and doc and isinstance(doc.get("path"), str):
            self._file = (doc["path"], "local")  # the layer table, scanned when the print starts
        elif leaf == "layer_progress":
            progress = tolerant(LayerProgress, doc) if doc else None
            if progress is not None:
                self._current = progress.current or 0  # none yet: a print starting
        elif leaf == "layer" and doc:
            layer = tolerant(LayerEvent, doc)
            self._current = layer.layer
            if layer.path:
                self._file = (layer.path, "local")
        elif leaf == "hold":
            hold = tolerant(PrinterHold, doc) if doc else None
            if hold is None or self._hold is None or hold.hold_id != self._hold.hold_id:
                self._moved = None  # another hold: the last one's moves do not count
            self._hold = hold
            # head (where the head is during a hold) is newer than this version's PrinterHold
            self._head = _point(doc.get("head")) if doc else None
        elif leaf == "event" and doc:
            event = tolerant(PrinterEvent, doc)
            if event.source == "printmesh" and event.event == "moved" and event.payload:
                self._moved = _point(event.payload.get("position"))

    def view(self) -> PrinterView:
        with self._lock:
            hold, current, file = self._hold, self._current, self._file
            head = self._head or self._moved
        held = hold is not None and hold.phase != "idle"
        layers = current - 1 if held and hold is not None and hold.layer == current else current
        if held and hold is not None and head is None and hold.origin is not None:
            head = (hold.origin.x, hold.origin.y, hold.origin.z)
        return PrinterView(
            file_path=file[0] if file else None,
            file_origin=file[1] if file else None,
            layers=max(0, layers),
            head=head if held else None,
        )


class PrinterFeeds:
    """One follower per printer node, shared by the cameras that follow it."""

    def __init__(self) -> None:
        self._followers: dict[str, PrinterFollower] = {}
        self._lock = threading.Lock()

    def follower(self, node: str) -> PrinterFollower:
        with self._lock:
            return self._followers.setdefault(node, PrinterFollower(node))

    @property
    def nodes(self) -> list[str]:
        with self._lock:
            return list(self._followers)
