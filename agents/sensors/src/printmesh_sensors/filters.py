"""Deciding whether a raw reading may be published: range, jump and median.

DHT frames carry an 8-bit checksum that a flipped high bit can survive, so a sensor
that says "checksum OK" can still report 47.6 °C in a 22 °C room. Such a value must
never reach MQTT: a heater or a fan may act on it. So:

* a reading outside the model's datasheet range is rejected;
* a reading further than ``jump`` from the last accepted one is rejected, unless
  ``confirm`` rejected readings in a row agree with each other: then the change is real
  (a door opened, a heater started) and the newest one is accepted. Rejections make the
  runner retry, so a real change is usually confirmed within the same cycle;
* with no accepted reading to compare with (at start, or after the sensor was
  unavailable), a first reading is only accepted once a second one agrees with it, so a
  spike cannot become the reference;
* an optional median over the last N accepted readings smooths what is left.
"""

from __future__ import annotations

import statistics
from collections import deque

from printmesh_sensors.drivers.base import RawReading, ReadError, SensorBase


class Unconfirmed(Exception):
    """The reading may be good but nothing confirms it yet: read again, it is not an error."""


class Pipeline:
    """Range check, jump filter and median for one sensor. Not thread-safe: the runner holds a lock."""

    def __init__(self, config: SensorBase) -> None:
        self.t_range = config.temperature_range
        self.h_range = config.humidity_range
        self.model = config.model_name
        self.max_t = config.filters.jump.temperature
        self.max_h = config.filters.jump.humidity
        self.confirm = config.filters.jump.confirm
        self.reference: RawReading | None = None
        self.candidates: list[RawReading] = []
        self.window: deque[RawReading] = deque(maxlen=config.filters.median)

    def reset(self) -> None:
        """Forget the past: after a long outage the last reading is no reference any more."""
        self.reference = None
        self.candidates.clear()
        self.window.clear()

    def check_range(self, raw: RawReading) -> None:
        (t_lo, t_hi), (h_lo, h_hi) = self.t_range, self.h_range
        if not t_lo <= raw.temperature <= t_hi:
            raise ReadError(
                "implausible", f"temperature {raw.temperature:g} °C outside {self.model} range {t_lo:g}..{t_hi:g}"
            )
        if not h_lo <= raw.humidity <= h_hi:
            raise ReadError("implausible", f"humidity {raw.humidity:g} % outside {self.model} range {h_lo:g}..{h_hi:g}")

    def _jump(self, a: RawReading, b: RawReading) -> str | None:
        """Why ``b`` is too far from ``a``, or None when it is close enough."""
        dt, dh = abs(b.temperature - a.temperature), abs(b.humidity - a.humidity)
        if self.max_t is not None and dt > self.max_t:
            return f"temperature jumped {dt:.1f} °C (from {a.temperature:g} to {b.temperature:g}; max {self.max_t:g})"
        if self.max_h is not None and dh > self.max_h:
            return f"humidity jumped {dh:.1f} % (from {a.humidity:g} to {b.humidity:g}; max {self.max_h:g})"
        return None

    def check_jump(self, raw: RawReading) -> None:
        if self.max_t is None and self.max_h is None:
            return
        if self.reference is not None and self._jump(self.reference, raw) is None:
            self.reference = raw
            self.candidates.clear()
            return
        if self.candidates and self._jump(self.candidates[-1], raw) is None:
            self.candidates.append(raw)
        else:
            self.candidates = [raw]
        needed = self.confirm if self.reference is not None else 2
        if len(self.candidates) >= needed:
            self.reference = raw
            self.candidates.clear()
            self.window.clear()  # the median must not mix the old level into the new one
            return
        if self.reference is None:
            raise Unconfirmed("waiting for a second reading that agrees")
        reason = self._jump(self.reference, raw) or "jump"
        raise ReadError("implausible", reason)

    def accept(self, raw: RawReading) -> tuple[RawReading, int]:
        """Range, jump, then the median: the value to publish and how many readings it combines."""
        self.check_range(raw)
        self.check_jump(raw)
        self.window.append(raw)
        if len(self.window) == 1:
            return raw, 1
        t = statistics.median(r.temperature for r in self.window)
        h = statistics.median(r.humidity for r in self.window)
        return RawReading(t, h), len(self.window)
