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

import threading
from dataclasses import dataclass

from pydantic import ValidationError

from printmesh_core import contract
from printmesh_core.contract import Route
from printmesh_core.models.base import Payload
from printmesh_core.models.layers import LayerEvent, LayerTable
from printmesh_core.models.printer import LayerProgress, Point, PrinterEvent, PrinterHold, PrinterJob

# What the follower reads, in the order it subscribes.
ROUTES: tuple[Route[Payload], ...] = (
    contract.PRINTER_JOB,
    contract.PRINTER_LAYERS,
    contract.PRINTER_LAYER_PROGRESS,
    contract.PRINTER_LAYER,
    contract.PRINTER_HOLD,
    contract.PRINTER_EVENT,
)  # type: ignore[assignment]


@dataclass(frozen=True)
class PrinterView:
    file_path: str | None = None
    file_origin: str | None = None
    layers: int = 0
    head: tuple[float, float, float] | None = None


def _point(value: object) -> tuple[float, float, float] | None:
    """A position inside an event body (a newer bridge may add fields to it)."""
    if not isinstance(value, dict):
        return None
    try:
        return _xyz(Point.model_validate(value, strict=True, extra="ignore"))
    except ValidationError:
        return None


def _xyz(point: Point | None) -> tuple[float, float, float] | None:
    return (point.x, point.y, point.z) if point is not None else None


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

    def feed(self, route: Route[Payload], payload: bytes) -> contract.Unreadable | None:
        """One message of one of ``ROUTES``; an empty payload clears a retained value.

        A malformed one changes nothing and is returned, for the runtime to count and log."""
        try:
            value = route.read(payload) if payload else None
        except contract.Unreadable as exc:
            return exc
        with self._lock:
            self._apply(route, value)
        return None

    def _apply(self, route: Route[Payload], value: Payload | None) -> None:
        if isinstance(value, PrinterJob) or route is contract.PRINTER_JOB:
            self._job = value if isinstance(value, PrinterJob) else None
            if self._job is not None and self._job.file_path:
                self._file = (self._job.file_path, self._job.file_origin)
        elif isinstance(value, LayerTable) and value.path:
            self._file = (value.path, "local")  # the layer table, scanned when the print starts
        elif isinstance(value, LayerProgress):
            self._current = value.current or 0  # none yet: a print starting
        elif isinstance(value, LayerEvent):
            self._current = value.layer
            if value.path:
                self._file = (value.path, "local")
        elif route is contract.PRINTER_HOLD:
            hold = value if isinstance(value, PrinterHold) else None
            if hold is None or self._hold is None or hold.hold_id != self._hold.hold_id:
                self._moved = None  # another hold: the last one's moves do not count
            self._hold = hold
            self._head = _xyz(hold.head) if hold is not None else None
        elif isinstance(value, PrinterEvent) and value.source == "printmesh" and value.event == "moved":
            position = (value.payload or {}).get("position")
            self._moved = _point(position)

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
