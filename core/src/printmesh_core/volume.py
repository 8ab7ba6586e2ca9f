"""Where a print head may go: the printer profile's volume as OctoPrint reads it, minus a margin.

One owner for the bridge's move check and the coordinator's plan check, so the two can
never disagree about a point: the custom box when the profile sets one, else the volume
from its origin (lower left or centre), intersected with a disc on a circular bed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from printmesh_core.models.printer import BuildVolume


def _fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True)
class Region:
    """Allowed head positions: a box, intersected with a disc on a round bed."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    z_min: float
    z_max: float
    circle: tuple[float, float, float] | None = None  # centre x, centre y, radius

    def why_outside(self, x: float, y: float) -> str | None:
        """None when (x, y) is allowed, else which limit it breaks."""
        if not self.x_min <= x <= self.x_max:
            return f"X {_fmt(x)} is outside {_fmt(self.x_min)}..{_fmt(self.x_max)}"
        if not self.y_min <= y <= self.y_max:
            return f"Y {_fmt(y)} is outside {_fmt(self.y_min)}..{_fmt(self.y_max)}"
        if self.circle is not None:
            cx, cy, r = self.circle
            dist = math.hypot(x - cx, y - cy)
            if dist > r + 1e-9:
                return (
                    f"it is {_fmt(dist)} mm from the bed centre ({_fmt(cx)}, {_fmt(cy)}), beyond the radius {_fmt(r)}"
                )
        return None

    def xy_ok(self, x: float, y: float) -> bool:
        if not (self.x_min <= x <= self.x_max and self.y_min <= y <= self.y_max):
            return False
        if self.circle is None:
            return True
        cx, cy, r = self.circle
        return math.hypot(x - cx, y - cy) <= r

    def describe(self) -> str:
        shape = ""
        if self.circle is not None:
            cx, cy, r = self.circle
            shape = f", within {_fmt(r)} mm of ({_fmt(cx)}, {_fmt(cy)})"
        box = f"X {_fmt(self.x_min)}..{_fmt(self.x_max)}, Y {_fmt(self.y_min)}..{_fmt(self.y_max)}"
        return f"{box}{shape}, Z up to {_fmt(self.z_max)}"


@dataclass(frozen=True)
class NoRoom:
    """The margin or max Z leaves nothing: ``axis`` is 'xy' or 'z', ``value`` the culprit."""

    axis: str
    value: float
    floor: float = 0.0  # the volume's lowest Z, for the 'z' case's message


def bed_center(volume: BuildVolume) -> tuple[float, float]:
    """The middle of the printable area (a round bed's centre)."""
    if volume.form_factor == "circular":
        return (0.0, 0.0) if volume.origin == "center" else (volume.width / 2, volume.width / 2)
    p = physical_region(volume)
    return (p.x_min + p.x_max) / 2, (p.y_min + p.y_max) / 2


def physical_region(volume: BuildVolume) -> Region:
    """The volume as OctoPrint defines it: the custom box if set, else from origin and size."""
    if volume.custom_box is not None:
        b = volume.custom_box
        box = (b.x_min, b.x_max, b.y_min, b.y_max, b.z_min, b.z_max)
    elif volume.origin == "center":
        box = (-volume.width / 2, volume.width / 2, -volume.depth / 2, volume.depth / 2, 0.0, volume.height)
    else:
        box = (0.0, volume.width, 0.0, volume.depth, 0.0, volume.height)
    circle = None
    if volume.form_factor == "circular":
        # OctoPrint forces circular beds to origin 'center'; a lowerleft one is centred on the square.
        circle = (*bed_center(volume), volume.width / 2)
    return Region(*box, circle=circle)


def allowed_region(volume: BuildVolume, margin: float, max_z: float | None) -> Region | NoRoom:
    """The physical region minus ``margin`` in X/Y, capped at ``max_z``."""
    p = physical_region(volume)
    top = p.z_max if max_z is None else min(p.z_max, max_z)
    circle = None if p.circle is None else (p.circle[0], p.circle[1], p.circle[2] - margin)
    region = Region(p.x_min + margin, p.x_max - margin, p.y_min + margin, p.y_max - margin, p.z_min, top, circle)
    if region.x_min > region.x_max or region.y_min > region.y_max or (circle is not None and circle[2] < 0):
        return NoRoom("xy", margin)
    if region.z_max < region.z_min:
        return NoRoom("z", top, p.z_min)
    return region
