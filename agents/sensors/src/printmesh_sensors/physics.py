"""Dew point and units. Everything inside the agent is °C; conversion happens at the edge."""

from __future__ import annotations

import math

# Magnus formula coefficients over water (Sonntag 1990), good to about ±0.35 °C for
# -45..60 °C, which covers every DHT model's range that matters for an enclosure.
MAGNUS_B = 17.62
MAGNUS_C = 243.12  # °C


def dew_point(celsius: float, humidity: float) -> float | None:
    """Dew point in °C, or None when it does not exist (0 %RH: no water vapour at all)."""
    if humidity <= 0:
        return None
    gamma = math.log(min(humidity, 100.0) / 100.0) + MAGNUS_B * celsius / (MAGNUS_C + celsius)
    return MAGNUS_C * gamma / (MAGNUS_B - gamma)


def to_unit(celsius: float, unit: str) -> float:
    """°C to the configured unit ("C" or "F")."""
    return celsius * 9.0 / 5.0 + 32.0 if unit == "F" else celsius
