"""Fan speeds from the M106/M107 lines OctoPrint actually sent.

Marlin reports fan changes only when built with REPORT_FAN_CHANGE, so, like every peer,
we infer the speed from the commands. Peers got it wrong by ignoring the ``P`` index
(every fan showed the part fan) and by mis-scaling ``S``: on Marlin ``S`` is 0-255 and
``M106 S1`` is 1/255, while RepRapFirmware reads values up to 1.0 as a fraction, so the
same ``S1`` is full speed there. The scale is a setting, not a guess.

Feed lines from the ``gcode.sent`` hook (what went to the printer), not ``queuing``:
a queued line may still be dropped or rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from octoprint_printmesh.gcode import Gcode, parse
from printmesh_core.models.printer import FanSpeed, PrinterFans

FULL = 255
MAX_FANS = 16


@dataclass(frozen=True)
class FanSettings:
    scale: Literal["marlin", "reprap"] = "marlin"  # how S is read (see the module docstring)
    default_index: int = 0  # fan addressed when P is absent


@dataclass(frozen=True)
class FanMemory:
    """Marlin's M106 T: a stored temporary speed, and the speed to restore after using it."""

    temp: int | None = None
    saved: int | None = None


@dataclass(frozen=True)
class Fans:
    speeds: Mapping[int, FanSpeed]
    memory: Mapping[int, FanMemory]

    @staticmethod
    def empty() -> Fans:
        return Fans({}, {})


def _raw(value: float, settings: FanSettings) -> int:
    if settings.scale == "reprap" and value <= 1.0:
        value *= FULL
    return max(0, min(FULL, round(value)))


def _speed(raw: int, command: str, now: float) -> FanSpeed:
    return FanSpeed(speed=round(raw * 100 / FULL, 1), raw=raw, command=command, at=now)


def _index(cmd: Gcode, settings: FanSettings) -> int | None:
    p = cmd.value("P")
    if not cmd.has("P") or p is None:
        return settings.default_index
    index = int(p)
    return index if 0 <= index < MAX_FANS and index == p else None


def feed(fans: Fans, line: str, now: float, settings: FanSettings) -> Fans:
    """The fans after ``line`` was sent; any other line leaves them untouched.

    ``M106`` without ``S`` is full speed; ``M107`` is off. Marlin's ``T`` parameter:
    ``T3``-``T255`` only stores a temporary speed, ``T2`` switches to it (remembering the
    current speed) and ``T1`` switches back.
    """
    cmd = parse(line)
    if cmd is None or cmd.code not in ("M106", "M107"):
        return fans
    index = _index(cmd, settings)
    if index is None:
        return fans
    command = line.split(";", 1)[0].strip()
    current = fans.speeds.get(index)
    memory = fans.memory.get(index, FanMemory())
    raw: int
    if cmd.code == "M107":
        raw = 0
    elif cmd.has("T") and cmd.value("T") is not None:
        t = int(cmd.value("T") or 0)
        now_raw = current.raw if current else 0
        if t >= 3:
            return Fans(fans.speeds, {**fans.memory, index: FanMemory(min(t, FULL), memory.saved)})
        if t == 2 and memory.temp is not None:
            raw = memory.temp
            memory = FanMemory(memory.temp, now_raw)
        elif t == 1 and memory.saved is not None:
            raw = memory.saved
            memory = FanMemory(memory.temp, None)
        else:
            return fans  # nothing stored to switch to
    else:
        s = cmd.value("S")
        raw = FULL if not cmd.has("S") or s is None else _raw(s, settings)
    speeds = {**fans.speeds, index: _speed(raw, command, now)}
    return Fans(speeds, {**fans.memory, index: memory})


def fans_payload(fans: Fans, now: float) -> PrinterFans:
    return PrinterFans(ts=now, fans={str(i): f for i, f in sorted(fans.speeds.items())})
