"""What the print watch's silhouette needs of one capture, as plain data (no numpy: the coordinator's
loop builds it; the detector, in its own process, projects it: ``watch/silhouette.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from printmesh_core.models.camera import CameraGeometry
from printmesh_core.models.layers import LayerOutline

ImageKey = tuple[str, int]  # (camera name, grid point index)
Point = tuple[float, float]
Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class CameraModel:
    """A head camera: offset from the nozzle (mm), look-down angle and horizontal field of view (degrees)."""

    offset: Vec3
    pitch: float
    fov: float


@dataclass(frozen=True)
class Outline:
    """One printed layer: its top (mm), thickness, convex hulls and rings (mm, bed XY)."""

    z: float
    height: float
    hulls: tuple[tuple[Point, ...], ...] = ()
    rings: tuple[tuple[Point, ...], ...] = ()


@dataclass(frozen=True)
class Scene:
    """What the silhouette of one capture needs: the printed layers, where the head was, the cameras."""

    outlines: tuple[Outline, ...]
    heads: Mapping[ImageKey, Vec3] = field(default_factory=dict)
    cameras: Mapping[str, CameraModel] = field(default_factory=dict)


def camera_model(g: CameraGeometry) -> CameraModel:
    """The detector's camera from the geometry a capture recorded."""
    return CameraModel((g.offset[0], g.offset[1], g.offset[2]), g.pitch, g.fov)


def outlines_of(layers: Sequence[LayerOutline]) -> tuple[Outline, ...]:
    """The detector's outlines from the bridge's, in layer order; a missing height is the step from the layer below."""
    out: list[Outline] = []
    below = 0.0
    for o in sorted(layers, key=lambda x: x.layer):
        height = o.height if o.height is not None and o.height > 0 else max(o.z - below, 0.05)
        hulls = tuple(tuple((float(x), float(y)) for x, y in h) for h in o.hulls)
        rings = tuple(tuple((float(x), float(y)) for x, y in r) for r in o.rings)
        out.append(Outline(float(o.z), float(height), hulls, rings))
        below = o.z
    return tuple(out)
