"""Head moves that cannot hit the print or leave the machine, and the way back.

Neither OctoPrint's jog nor the firmware checks bounds (the virtual printer accepts any
coordinate), and peers that "configured" bounds never enforced them. Every function
here returns either a ``Plan`` (the exact lines to send) or a ``Refusal`` that names the
offending axis and value; nothing is clamped silently, because a move that lands
somewhere other than asked for makes a capture lie about where it was taken.

Coordinates and feed rates are validated *after* rounding to the 3 decimals written into
the G-code, so what was checked is exactly what is sent. The one thing clamped is the hold's
own feed rates (the profile's speeds, the print's restored one), into the limits of
``limits.py``: nobody asked for them, and the head must still come back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from octoprint_printmesh.gcode import AXES, TOKEN_PREFIX, Modes, barrier, fmt, parse
from octoprint_printmesh.hold.limits import (
    MAX_FEEDRATE,
    MIN_FEEDRATE,
    clamp_feedrate,
    feedrate_problem,
    line_feedrate_problem,
    plan_seconds,
)
from printmesh_core.models.printer import BuildVolume, PrinterProfile
from printmesh_core.volume import Region, physical_region
from printmesh_core.volume import allowed_region as volume_region

# Codes a held or printing job must not receive from the gcode command: they move the
# head, redefine coordinates, drop the steppers' position or block the queue. Moves go
# through ``plan_move`` instead.
FORBIDDEN_WHILE_PRINTING = frozenset(
    {"G0", "G1", "G2", "G3", "G5", "G10", "G11", "G12", "G27", "G28", "G29", "G30", "G34", "G92",
     "M0", "M1", "M18", "M84", "M125", "M226", "M600", "M601", "M701", "M702"}
)  # fmt: skip


@dataclass(frozen=True)
class Pos:
    x: float
    y: float
    z: float


@dataclass(frozen=True)
class Origin:
    """Where the hold began and the modes in force then: what the release restores."""

    pos: Pos
    modes: Modes


@dataclass(frozen=True)
class SafetySettings:
    margin: float = 5.0  # mm kept from the XY edges of the volume (or the rim of a round bed)
    max_z: float | None = None  # mm; None: the volume's top
    clearance: float = 2.0  # mm the nozzle stays above the printed layer
    travel_feedrate: float | None = None  # mm/min for XY; None: the profile's X speed
    z_feedrate: float | None = None  # mm/min for Z; None: the profile's Z speed
    min_feedrate: float = MIN_FEEDRATE  # mm/min; a slower request is refused, our own feed rates clamped
    max_feedrate: float = MAX_FEEDRATE  # mm/min; a faster request is refused, our own feed rates clamped
    require_homed: frozenset[str] = field(default_factory=lambda: frozenset(AXES))

    def __post_init__(self) -> None:
        if not 1 <= self.min_feedrate <= self.max_feedrate:
            raise ValueError(f"feed rates: need 1 <= min ({self.min_feedrate:g}) <= max ({self.max_feedrate:g})")

    def feed(self, value: float) -> float:
        """One of the hold's own feed rates, as it will be written, inside the limits."""
        return clamp_feedrate(value, self.min_feedrate, self.max_feedrate)


@dataclass(frozen=True)
class Plan:
    lines: tuple[str, ...]
    end: Pos | None  # where the head is afterwards; None if the plan does not move it
    token: str
    seconds: float = 0.0  # the moves' time at their written feed rates (limits.plan_seconds)


@dataclass(frozen=True)
class Refusal:
    """Why nothing is sent. ``reason`` is machine-readable; ``axis`` and ``value`` name the culprit."""

    # not_homed, out_of_range, below_layer, too_fast, too_slow, too_long, no_room, bad_origin, forbidden_gcode
    reason: str
    message: str
    axis: str | None = None  # 'x', 'y', 'z', 'xy' (round beds), 'feedrate'
    value: float | None = None


ROUNDING = 0.0005  # the most a 3-decimal coordinate differs from the value it was rounded from


def _r3(value: float) -> float:
    return float(fmt(value))


def _up3(value: float) -> float:
    """Rounded up to 3 decimals, so a floor is never undercut by rounding."""
    up = math.ceil(round(value * 1000, 6)) / 1000  # round() first: 2.2 * 1000 is 2200.0000000000005
    return up if up >= value - 1e-9 else float(fmt(up + 0.001))  # 1e-9: float noise, not a distance


def allowed_region(volume: BuildVolume, settings: SafetySettings) -> Region | Refusal:
    """The physical region minus the XY margin, capped at max Z (``printmesh_core.volume``)."""
    region = volume_region(volume, settings.margin, settings.max_z)
    if isinstance(region, Region):
        return region
    if region.axis == "xy":
        m = region.value
        return Refusal("no_room", f"the margin of {fmt(m)} mm leaves no room in this build volume", "xy", m)
    z = region.value
    return Refusal("no_room", f"max Z {fmt(z)} is below the volume's floor {fmt(region.floor)}", "z", z)


def _feedrates(profile: PrinterProfile, settings: SafetySettings) -> tuple[float, float]:
    """Travel and Z feed rates for the hold's own lines, clamped into the limits (never F0)."""
    travel, z = settings.travel_feedrate or profile.speeds.x, settings.z_feedrate or profile.speeds.z
    return settings.feed(travel), settings.feed(z)


def _axis_refusal(axis: str, value: float, low: float, high: float, given: bool, why: str) -> Refusal | None:
    if low <= value <= high:
        return None
    note = "" if given else f" ({axis.upper()} was not given: that is where the head is now)"
    return Refusal(
        "out_of_range",
        f"{axis.upper()} {fmt(value)} is outside the allowed range {fmt(low)}..{fmt(high)} ({why}){note}",
        axis,
        value,
    )


def plan_move(
    *,
    x: float | None,
    y: float | None,
    z: float | None,
    feedrate: float | None,
    head: Pos,
    layer_z: float,
    homed: frozenset[str],
    profile: PrinterProfile,
    settings: SafetySettings,
    token: str,
) -> Plan | Refusal:
    """Lift (Z only), travel (XY), lower (Z only), then M400 and the echo token.

    An omitted axis keeps the head's current value; an omitted Z means "where it is, but
    at least ``layer_z + clearance``". Z is never planned below the printed layer plus the
    clearance, so the nozzle cannot touch the part on the way out or back.
    """
    missing = sorted(settings.require_homed - homed)
    if missing:
        return Refusal("not_homed", f"axis {missing[0].upper()} is not homed (no G28 seen since connect)", missing[0])
    region = allowed_region(profile.volume, settings)
    if isinstance(region, Refusal):
        return region
    travel_f, z_f = _feedrates(profile, settings)
    if feedrate is not None:
        problem = feedrate_problem(feedrate, settings.min_feedrate, settings.max_feedrate)
        if problem is not None:
            return Refusal(problem[0], problem[1], "feedrate", feedrate)
        travel_f = float(fmt(feedrate))
    z_floor = _up3(max(layer_z + settings.clearance, region.z_min))
    tx = _r3(head.x if x is None else x)
    ty = _r3(head.y if y is None else y)
    tz = max(_up3(head.z), z_floor) if z is None else _r3(z)
    why = f"volume minus a {fmt(settings.margin)} mm margin"
    for axis, value, low, high, given in (
        ("x", tx, region.x_min, region.x_max, x is not None),
        ("y", ty, region.y_min, region.y_max, y is not None),
    ):
        refusal = _axis_refusal(axis, value, low, high, given, why)
        if refusal:
            return refusal
    if not region.xy_ok(tx, ty):
        assert region.circle is not None
        cx, cy, r = region.circle
        dist = math.hypot(tx - cx, ty - cy)
        return Refusal(
            "out_of_range",
            f"X {fmt(tx)} Y {fmt(ty)} is {fmt(dist)} mm from the bed centre, beyond the allowed radius {fmt(r)}",
            "xy",
            dist,
        )
    if tz > region.z_max:
        return Refusal("out_of_range", f"Z {fmt(tz)} is above the maximum Z {fmt(region.z_max)}", "z", tz)
    if tz < z_floor:
        return Refusal(
            "below_layer",
            f"Z {fmt(tz)} is below the printed layer ({fmt(layer_z)}) plus the {fmt(settings.clearance)} mm "
            f"clearance: at least {fmt(z_floor)}",
            "z",
            tz,
        )
    lift = max(_up3(head.z), tz, z_floor)
    if lift > region.z_max:
        msg = f"the safe travel height Z {fmt(lift)} is above the maximum Z {fmt(region.z_max)}"
        return Refusal("out_of_range", msg, "z", lift)
    lines = ["G90"]
    if lift > head.z:
        lines.append(f"G1 Z{fmt(lift)} F{fmt(z_f)}")
    if (tx, ty) != (head.x, head.y):
        lines.append(f"G1 X{fmt(tx)} Y{fmt(ty)} F{fmt(travel_f)}")
    if tz < lift:
        lines.append(f"G1 Z{fmt(tz)} F{fmt(z_f)}")
    lines.extend(barrier(token))
    return Plan(tuple(lines), Pos(tx, ty, tz), token, plan_seconds((head.x, head.y, head.z), lines))


def plan_return(
    *, origin: Origin, head: Pos | None, profile: PrinterProfile, settings: SafetySettings, token: str
) -> Plan | Refusal:
    """Back to where the hold began, then restore the modes the print was using.

    Lift to the higher of the head and the origin, travel, lower onto the origin; then
    the feed rate (the next file move may not carry an F of its own), G90/G91, and M82/M83
    last, because on Marlin G90/G91 also switch the extruder mode. ``head`` is None when
    the head never left the origin: only the modes are restored.
    The origin is checked against the volume without the margin: the print itself may
    legitimately run closer to the edge than a capture move is allowed to.
    """
    region = physical_region(profile.volume)
    o = Pos(_r3(origin.pos.x), _r3(origin.pos.y), _r3(origin.pos.z))
    # The origin is where the machine really was; only the 3-decimal rounding may cross an edge.
    slack = Region(region.x_min - ROUNDING, region.x_max + ROUNDING, region.y_min - ROUNDING,
                   region.y_max + ROUNDING, region.z_min - ROUNDING, region.z_max + ROUNDING,
                   None if region.circle is None else (*region.circle[:2], region.circle[2] + ROUNDING))  # fmt: skip
    if not (slack.xy_ok(o.x, o.y) and slack.z_min <= o.z <= slack.z_max):
        return Refusal("bad_origin", f"hold origin X {fmt(o.x)} Y {fmt(o.y)} Z {fmt(o.z)} is outside the build volume")
    travel_f, z_f = _feedrates(profile, settings)
    lines = ["G90"]
    if head is not None:
        lift = max(_r3(head.z), o.z)
        if lift > slack.z_max:
            msg = f"the return height Z {fmt(lift)} is above the volume's top {fmt(region.z_max)}"
            return Refusal("out_of_range", msg, "z", lift)
        if lift > head.z:
            lines.append(f"G1 Z{fmt(lift)} F{fmt(z_f)}")
        if (head.x, head.y) != (o.x, o.y):
            lines.append(f"G1 X{fmt(o.x)} Y{fmt(o.y)} F{fmt(travel_f)}")
        if o.z < lift:
            lines.append(f"G1 Z{fmt(o.z)} F{fmt(z_f)}")
    seconds = 0.0 if head is None else plan_seconds((head.x, head.y, head.z), lines)
    restore = restore_lines(origin.modes, token, settings)
    return Plan((*lines, *restore), o if head is not None else None, token, seconds)


def restore_lines(modes: Modes, token: str, settings: SafetySettings | None = None) -> tuple[str, ...]:
    """Feed rate, then G90/G91, then M82/M83 (G90/G91 may reset E on Marlin), then the barrier.

    The print's feed rate is clamped into the limits like every feed rate the hold writes:
    a file's ``F0.0001`` (written ``F0``) is not sent back to the printer.
    """
    feed = None if modes.feedrate is None else (settings or SafetySettings()).feed(modes.feedrate)
    lines = [f"G1 F{fmt(feed)}"] if feed is not None else []
    lines.append("G90" if modes.absolute else "G91")
    lines.append("M83" if modes.extrusion_relative else "M82")
    return (*lines, *barrier(token))


def check_gcode(lines: Iterable[str], *, printing: bool, settings: SafetySettings | None = None) -> Refusal | None:
    """Refuse lines that would fake a completion token, carry a feed rate outside the limits,
    or (while a print runs or is held) move the head, redefine coordinates, lose position or
    block the queue."""
    s = settings or SafetySettings()
    for line in lines:
        if TOKEN_PREFIX in line.lower():
            return Refusal("forbidden_gcode", f"{line!r} contains the reserved echo prefix {TOKEN_PREFIX!r}")
        feed = line_feedrate_problem(line, s.min_feedrate, s.max_feedrate)
        if feed is not None:
            return Refusal(feed[0], feed[1], "feedrate")
        cmd = parse(line)
        if printing and cmd is not None and cmd.code in FORBIDDEN_WHILE_PRINTING:
            return Refusal(
                "forbidden_gcode",
                f"{cmd.code} is refused while a print is running or held (it would move the head, change "
                "coordinates or block); use the move command",
            )
    return None
