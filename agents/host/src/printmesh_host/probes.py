"""Temperature and throttling: fallback chains for Raspberry Pis and common SoCs.

Finding the source is the expensive part (globbing sysfs, looking up vcgencmd), so it is
done once and remembered; a host without a sensor is looked at again only every minute.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from printmesh_core.models.host import Temperature, Throttling
from printmesh_host.config import HostConfig

RECHECK = 60.0  # seconds between searches for a temperature source when none was found


class Unavailable(Exception):
    """This host cannot provide the metric; the message says why."""


def read_psutil_temperature(chips: list[str]) -> Temperature | None:
    sensors_temperatures = getattr(psutil, "sensors_temperatures", None)
    if sensors_temperatures is None:
        return None
    found = sensors_temperatures()
    for chip in chips:
        entries = [e for e in found.get(chip, []) if e.current is not None and e.current > -40]
        if not entries:
            continue
        package = [e for e in entries if e.label.lower().startswith(("package", "tctl", "tdie"))]
        chosen = package or entries
        return Temperature(celsius=round(sum(e.current for e in chosen) / len(chosen), 1), source=f"psutil:{chip}")
    return None


def read_sysfs_temperature(base: Path) -> Temperature | None:
    """``/sys/class/thermal/thermal_zone*/temp`` in millidegrees; CPU-like zones first."""
    zones = sorted(base.glob("thermal_zone*"))
    readings: list[tuple[int, Temperature]] = []
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip()
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        rank = 0 if any(k in kind.lower() for k in ("cpu", "soc", "x86_pkg", "package")) else 1
        readings.append((rank, Temperature(celsius=round(milli / 1000, 1), source=f"sysfs:{zone.name} ({kind})")))
    return min(readings, key=lambda r: r[0])[1] if readings else None


def read_vcgencmd(path: str | None, *args: str) -> str | None:
    if path is None:
        return None
    try:
        out = subprocess.run([path, *args], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def parse_throttled(text: str) -> Throttling:
    """``throttled=0x50005``: bits 0-3 are 'now', bits 16-19 'since boot'."""
    raw = text.split("=", 1)[-1].strip()
    bits = int(raw, 16)

    def bit(n: int) -> bool:
        return bool(bits & (1 << n))

    return Throttling(
        raw=raw,
        under_voltage_now=bit(0), freq_capped_now=bit(1), throttled_now=bit(2), soft_temp_limit_now=bit(3),
        under_voltage_occurred=bit(16), freq_capped_occurred=bit(17),
        throttled_occurred=bit(18), soft_temp_limit_occurred=bit(19),
    )  # fmt: skip


def read_sysfs_throttled(path: Path) -> Throttling | None:
    """The Pi firmware driver's ``get_throttled`` attribute (hex, no prefix): no process to spawn."""
    try:
        return parse_throttled(path.read_text().strip())
    except (OSError, ValueError):
        return None


class Probes:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.vcgencmd = shutil.which(config.vcgencmd)
        self._temp_source: Callable[[], Temperature | None] | None = None
        self._searched_at = -RECHECK

    def temperature(self) -> Temperature:
        if self._temp_source is not None:
            reading = self._temp_source()
            if reading is not None:
                return reading
            self._temp_source = None  # it went away: search again below
        if time.monotonic() - self._searched_at >= RECHECK:
            self._searched_at = time.monotonic()
            for source in self._temperature_sources():
                reading = source()
                if reading is not None:
                    self._temp_source = source
                    return reading
        raise Unavailable("no CPU temperature sensor found (psutil, sysfs thermal zones, vcgencmd)")

    def _temperature_sources(self) -> list[Callable[[], Temperature | None]]:
        chips, zones = self.config.temperature_chips, self.config.thermal_path
        return [
            lambda: read_psutil_temperature(chips),
            lambda: read_sysfs_temperature(zones),
            self._vcgencmd_temperature,
        ]

    def _vcgencmd_temperature(self) -> Temperature | None:
        text = read_vcgencmd(self.vcgencmd, "measure_temp")  # "temp=48.3'C"
        if text and text.startswith("temp="):
            return Temperature(celsius=float(text[5:].split("'")[0]), source="vcgencmd")
        return None

    def throttling(self) -> Throttling:
        reading = read_sysfs_throttled(self.config.throttled_path)
        if reading is None:
            text = read_vcgencmd(self.vcgencmd, "get_throttled")
            reading = parse_throttled(text) if text and "=" in text else None
        if reading is None:
            raise Unavailable("throttling flags not available (not a Raspberry Pi)")
        return reading
