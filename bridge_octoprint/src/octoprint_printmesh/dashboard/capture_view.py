"""The webcam widget's capture half: the latest layer's grid, and the planned grid on the bed.

The planned points are the coordinator's own (``CoordinatorState.grid``), checked here
against the region the bridge itself allows a move in (core's ``volume``: the profile's
volume minus the bridge's safety margin), so a point the bridge would refuse is marked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from octoprint_printmesh.dashboard.model import MeshModel
from octoprint_printmesh.dashboard.sections import Section, presence
from printmesh_core import contract
from printmesh_core.models.printer import PrinterProfile
from printmesh_core.volume import Region, allowed_region, physical_region

ImageUrl = Callable[[str, str], str | None]  # (camera node, capture id) -> URL when the bridge has the image


def _box(region: Region) -> list[float]:
    return [region.x_min, region.x_max, region.y_min, region.y_max]


def bed(profile: PrinterProfile | None, margin: float, max_z: float | None) -> tuple[Section | None, Region | None]:
    """The bed's outline and the allowed region, as boxes (and circles on a round bed)."""
    if profile is None:
        return None, None
    physical = physical_region(profile.volume)
    allowed = allowed_region(profile.volume, margin, max_z)
    region = allowed if isinstance(allowed, Region) else None
    outline: Section = {"box": _box(physical), "circle": physical.circle, "allowed": None, "allowed_circle": None}
    if region is not None:
        outline.update({"allowed": _box(region), "allowed_circle": region.circle})
    return outline, region


def capture(model: MeshModel, margin: float, max_z: float | None, image_url: ImageUrl) -> Section:
    state, last = model.coordinator, model.capture
    node = model.coordinator_node
    out: Section = {"coordinator": node}
    out.update(
        presence(model.source(node, contract.COORDINATOR) if node else None, fallback=state.ts if state else None)
    )
    outline, region = bed(model.printer.get("profile"), margin, max_z)
    out["bed"] = outline
    if state is not None and out["online"]:
        grid = state.grid or []
        out.update({"phase": state.phase, "message": state.message, "points": state.points,
                    "capturing": state.layer, "point": state.point,
                    "grid": [[p.x, p.y, region.xy_ok(p.x, p.y) if region else False] for p in grid]})  # fmt: skip
    if last is not None:
        out["last"] = _last(last, image_url)
    return out


def _last(last: Any, image_url: ImageUrl) -> Section:
    images = [{"camera": i.camera, "index": i.index, "x": i.position.x, "y": i.position.y, "ts": i.timestamp,
               "url": image_url(i.camera_node, i.capture_id)}
              for i in sorted(last.images, key=lambda i: (i.camera, i.index))]  # fmt: skip
    return {"layer": last.layer, "z": last.z_height, "ts": last.timestamp, "complete": last.complete,
            "images": images, "failures": [f.message for f in last.failures][:5]}  # fmt: skip
