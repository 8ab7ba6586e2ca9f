"""Physical limits of the lines the hold writes: feed rates bounded on both sides, and time.

A feed rate is checked *after* rounding to the 3 decimals written into the G-code, so
``F0`` can never reach the printer: 0.0001 mm/min is written as ``F0``, and firmwares read
that as "keep the last speed" (Marlin) or as a move that never ends (a planner dividing by
it). A move that creeps at 0.001 mm/min is just as bad: it keeps the printer busy for
days, and no release can let the print go on before it ends, because the firmware runs its
queue in order.

Two policies, on purpose:

* a requested feed rate outside the limits is **refused**, naming the field and the limits:
  a requester who asked for 0.001 mm/min has a bug, and moving at some other speed than
  asked would hide it;
* the hold's own feed rates (the profile's axis speeds, the print's feed rate restored at
  the end) are **clamped** into the limits: nobody can be told about them, and the hold
  must still be able to come back.

And a move is only sent when its planned time (straight-line distance over the written
feed rate, summed over its segments) fits in ``TIME_SHARE`` of its timeout: the rest is
kept for acceleration, the M400 and the echo's round trip. So a legal but slow move over a
long way is refused before anything moves, instead of timing out with the head away.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from octoprint_printmesh.gcode import fmt, parse

MIN_FEEDRATE = 60.0  # mm/min (1 mm/s): slower than any travel a capture needs
MAX_FEEDRATE = 12000.0  # mm/min (200 mm/s): a sane cap for a head that leaves a print
TIME_SHARE = 0.8  # a planned move may use this share of its timeout
_MOVES = frozenset(("G0", "G1"))


def written(value: float) -> float:
    """The value as the G-code line carries it (3 decimals)."""
    return float(fmt(value))


def clamp_feedrate(value: float, low: float, high: float) -> float:
    """For the hold's own lines: the written value, moved into ``low..high`` (``low`` >= 1)."""
    return min(max(written(value), low), high)


def feedrate_problem(value: float, low: float, high: float) -> tuple[str, str] | None:
    """``(reason, message)`` when a requested feed rate, as written, is outside ``low..high``."""
    sent = written(value) if math.isfinite(value) else value
    if low <= sent <= high:
        return None
    reason = "too_slow" if sent < low else "too_fast"
    shown = fmt(value) if math.isfinite(value) and abs(value) >= 0.001 else f"{value:g}"
    where = "below the minimum" if sent < low else "above the maximum"
    return reason, (
        f"feedrate {shown} mm/min is {where}: the allowed range is {fmt(low)}..{fmt(high)} mm/min "
        "(the bridge's safety.min_feedrate and safety.max_feedrate)"
    )


def line_feedrate_problem(line: str, low: float, high: float) -> tuple[str, str] | None:
    """``(reason, message)`` for a G0/G1 line whose F word, as written, is outside ``low..high``."""
    cmd = parse(line)
    feed = None if cmd is None or cmd.code not in _MOVES else cmd.value("F")
    problem = None if feed is None else feedrate_problem(feed, low, high)
    return None if problem is None else (problem[0], f"{line.strip()!r}: {problem[1]}")


def plan_seconds(start: tuple[float, float, float], lines: Iterable[str]) -> float:
    """Time of absolute G0/G1 lines from ``start`` at their written feed rates, no acceleration."""
    x, y, z = start
    feed: float | None = None
    total = 0.0
    for line in lines:
        cmd = parse(line)
        if cmd is None or cmd.code not in _MOVES:
            continue
        feed = cmd.value("F") or feed
        nx, ny, nz = (cmd.value(a) for a in "XYZ")
        to = (x if nx is None else nx, y if ny is None else ny, z if nz is None else nz)
        dist = math.dist((x, y, z), to)
        if dist > 0:
            total += math.inf if not feed else dist / feed * 60.0
        x, y, z = to
    return total


def time_problem(*plans: tuple[float, float, str]) -> str | None:
    """Why one of the ``(seconds, timeout, what)`` plans cannot be sent; None when all fit."""
    for seconds, timeout, what in plans:
        allowed = timeout * TIME_SHARE
        if seconds > allowed:
            return (
                f"the {what} would take {seconds:.1f} s at the written feed rates, more than {allowed:.1f} s "
                f"({TIME_SHARE:.0%} of its {timeout:g} s timeout): use a higher feed rate or a shorter way"
            )
    return None
