"""Grid points and where the head may go, from the printer profile the bridge publishes.

The region mirrors how OctoPrint (and the bridge's move check) read a profile: the custom
box when set, else the volume from its origin (lower left or centre), intersected with a
disc on a circular bed; minus the margin in X/Y, capped at ``max_z``. A point outside is
reported with its index and coordinates and the plan is refused; nothing is clipped,
because an image taken somewhere else than its metadata says is worse than none.
"""

from __future__ import annotations

from dataclasses import dataclass

from printmesh_coordinator.config import GridConfig, PrinterConfig
from printmesh_core.models.printer import BuildVolume, PrinterProfile
from printmesh_core.volume import Region
from printmesh_core.volume import allowed_region as volume_region
from printmesh_core.volume import bed_center as volume_center

# OctoPrint's built-in default profile, for a preview with neither a profile nor a broker.
DEFAULT_PROFILE = PrinterProfile(
    id="_default", name="OctoPrint default", volume=BuildVolume(width=200, depth=200, height=200)
)


@dataclass(frozen=True)
class Point:
    x: float
    y: float


def fmt(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def bed_center(volume: BuildVolume) -> Point:
    """The middle of the printable area: where a grid without a centre is placed."""
    return Point(*volume_center(volume))


def allowed_region(volume: BuildVolume, margin: float, max_z: float | None) -> Region | str:
    """The volume minus ``margin`` in X/Y, capped at ``max_z``; a message when nothing is left."""
    region = volume_region(volume, margin, max_z)
    if isinstance(region, Region):
        return region
    if region.axis == "xy":
        return f"a margin of {fmt(margin)} mm leaves no room on this bed"
    return f"max_z {fmt(region.value)} is below the volume's floor {fmt(region.floor)}"


def grid_points(grid: GridConfig, volume: BuildVolume) -> tuple[Point, ...]:
    """Points in capture order: explicit ones as given; an N×N grid row by row from the front,
    alternating direction (a serpentine), so the head never crosses the bed between rows."""
    if grid.points is not None:
        return tuple(Point(p.x, p.y) for p in grid.points)
    size = grid.size or 1
    spacing = grid.spacing or 0.0
    centre = Point(grid.center.x, grid.center.y) if grid.center is not None else bed_center(volume)
    half = (size - 1) // 2
    out = []
    for row in range(size):
        cols = range(size) if row % 2 == 0 else range(size - 1, -1, -1)
        for col in cols:
            out.append(Point(round(centre.x + (col - half) * spacing, 3), round(centre.y + (row - half) * spacing, 3)))
    return tuple(out)


def grid_center(grid: GridConfig, volume: BuildVolume) -> Point:
    if grid.points is not None:
        xs, ys = [p.x for p in grid.points], [p.y for p in grid.points]
        return Point(round((min(xs) + max(xs)) / 2, 3), round((min(ys) + max(ys)) / 2, 3))
    return Point(grid.center.x, grid.center.y) if grid.center is not None else bed_center(volume)


@dataclass(frozen=True)
class Fit:
    """A printer's grid checked against a profile: the points, the region, and what does not fit."""

    points: tuple[Point, ...]
    region: Region | None
    problems: tuple[tuple[int | None, str], ...]  # (point index or None, message)

    @property
    def ok(self) -> bool:
        return not self.problems

    def refusal(self, printer: str) -> str | None:
        """One line naming the first offending point, and how many others there are."""
        if not self.problems:
            return None
        index, message = self.problems[0]
        where = f"grid point {index} " if index is not None else ""
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"printer {printer}: plan refused: {where}{message}{more}"


def check_fit(printer: PrinterConfig, profile: PrinterProfile) -> Fit:
    """Every grid point, and the lowest capture height (clearance above the bed), against the profile."""
    points = grid_points(printer.grid, profile.volume)
    region = allowed_region(profile.volume, printer.margin, printer.max_z)
    if isinstance(region, str):
        return Fit(points, None, ((None, region),))
    problems: list[tuple[int | None, str]] = []
    for i, p in enumerate(points):
        why = region.why_outside(p.x, p.y)
        if why is not None:
            limits = f"bed minus a {fmt(printer.margin)} mm margin: {region.describe()}"
            problems.append((i, f"({fmt(p.x)}, {fmt(p.y)}) is out of bounds: {why} ({limits})"))
    lowest = region.z_min + printer.z_clearance
    if lowest > region.z_max:
        problems.append((None, f"z_clearance {fmt(printer.z_clearance)} is above max Z {fmt(region.z_max)}"))
    return Fit(points, region, tuple(problems))
