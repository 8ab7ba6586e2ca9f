"""Sampling the host with psutil, plus the fallbacks small boards need.

A metric the host cannot provide is recorded with its reason and left out; it never
stops the agent, and it is logged once rather than on every sample.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from printmesh_core.models.host import (
    Cpu,
    Frequency,
    HostState,
    Load,
    Memory,
    Storage,
    Swap,
    Temperature,
    Throttling,
    Uptime,
)
from printmesh_host.config import HostConfig

log = logging.getLogger("printmesh.host.metrics")


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


def read_vcgencmd(tool: str, *args: str) -> str | None:
    path = shutil.which(tool)
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


def _busy_total(times: Any) -> tuple[float, float]:
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total


class CpuMeter:
    """CPU use between two readings of /proc/stat, safe to call from any thread.

    psutil.cpu_percent(interval=None) keeps its previous reading per calling thread, so
    an on-demand refresh from a command thread would report 0% or a stale average.
    """

    MIN_SPAN = 0.5  # seconds: a shorter span is mostly rounding noise

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = psutil.cpu_times(percpu=True)
        self._at = time.monotonic()
        self._result: Cpu | None = None

    def read(self) -> Cpu:
        with self._lock:
            wait = self.MIN_SPAN - (time.monotonic() - self._at)
            if wait > 0 and self._result is not None:
                return self._result
            if wait > 0:
                time.sleep(wait)  # only the very first sample after start
            now = psutil.cpu_times(percpu=True)
            per_core = [self._percent(a, b) for a, b in zip(self._last, now, strict=False)]
            busy = sum(_busy_total(b)[0] - _busy_total(a)[0] for a, b in zip(self._last, now, strict=False))
            total = sum(_busy_total(b)[1] - _busy_total(a)[1] for a, b in zip(self._last, now, strict=False))
            self._last, self._at = now, time.monotonic()
            percent = round(min(100.0, max(0.0, 100.0 * busy / total)), 1) if total > 0 else 0.0
            self._result = Cpu(percent=percent, per_core=per_core, count=len(per_core))
            return self._result

    @staticmethod
    def _percent(before: Any, after: Any) -> float:
        busy = _busy_total(after)[0] - _busy_total(before)[0]
        total = _busy_total(after)[1] - _busy_total(before)[1]
        return round(min(100.0, max(0.0, 100.0 * busy / total)), 1) if total > 0 else 0.0


class Sampler:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self._reported: dict[str, str] = {}
        self._cpu_meter = CpuMeter()
        self._readers: dict[str, Callable[[], Any]] = {
            "cpu": self._cpu, "load": self._load, "temperature": self._temperature,
            "frequency": self._frequency, "memory": self._memory, "swap": self._swap,
            "storage": self._storage, "uptime": self._uptime, "throttling": self._throttling,
        }  # fmt: skip

    def enabled(self) -> list[str]:
        flags = self.config.metrics.model_dump()
        return [name for name in self._readers if flags[name]]

    def sample(self) -> HostState:
        values: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        for name in self.enabled():
            try:
                values[name] = self._readers[name]()
            except Unavailable as exc:
                unavailable[name] = str(exc)
            except Exception as exc:  # a broken reader must not take the agent down
                unavailable[name] = f"{type(exc).__name__}: {exc}"
            self._note(name, unavailable.get(name))
        return HostState(**values, unavailable=unavailable)

    def _note(self, name: str, reason: str | None) -> None:
        """Log a change of availability once, not on every sample."""
        previous = self._reported.get(name)
        if reason is not None and previous != reason:
            log.warning("metric %s unavailable on this host: %s", name, reason)
        elif reason is None and previous:
            log.info("metric %s is available again", name)
        self._reported[name] = reason or ""

    # ----------------------------------------------------------------- readers
    def _cpu(self) -> Cpu:
        return self._cpu_meter.read()

    def _load(self) -> Load:
        one, five, fifteen = os.getloadavg()
        return Load(load1=round(one, 2), load5=round(five, 2), load15=round(fifteen, 2))

    def _temperature(self) -> Temperature:
        reading = read_psutil_temperature(self.config.temperature_chips) or read_sysfs_temperature(
            self.config.thermal_path
        )
        if reading is None:
            text = read_vcgencmd(self.config.vcgencmd, "measure_temp")  # "temp=48.3'C"
            if text and text.startswith("temp="):
                reading = Temperature(celsius=float(text[5:].split("'")[0]), source="vcgencmd")
        if reading is None:
            raise Unavailable("no CPU temperature sensor found (psutil, sysfs thermal zones, vcgencmd)")
        return reading

    def _frequency(self) -> Frequency:
        freq = psutil.cpu_freq()
        if freq is None or not freq.current:
            raise Unavailable("CPU frequency not exposed by this kernel")
        return Frequency(current_mhz=round(freq.current, 1), min_mhz=freq.min or None, max_mhz=freq.max or None)

    def _memory(self) -> Memory:
        vm = psutil.virtual_memory()
        return Memory(total=vm.total, used=vm.used, available=vm.available, percent=vm.percent)

    def _swap(self) -> Swap:
        sw = psutil.swap_memory()
        return Swap(total=sw.total, used=sw.used, free=sw.free, percent=sw.percent)

    def _storage(self) -> dict[str, Storage]:
        result: dict[str, Storage] = {}
        missing: list[str] = []
        for mount in self.config.mounts:
            try:
                du = psutil.disk_usage(mount)
            except OSError:
                missing.append(mount)
                continue
            result[mount] = Storage(total=du.total, used=du.used, free=du.free, percent=du.percent)
        if missing:
            self._note(f"storage:{','.join(missing)}", "mount point not found")
        if not result:
            raise Unavailable(f"no configured mount point exists: {', '.join(missing)}")
        return result

    def _uptime(self) -> Uptime:
        boot = psutil.boot_time()
        return Uptime(seconds=round(time.time() - boot, 1), boot_time=boot)

    def _throttling(self) -> Throttling:
        text = read_vcgencmd(self.config.vcgencmd, "get_throttled")
        if not text or "=" not in text:
            raise Unavailable("vcgencmd get_throttled not available (not a Raspberry Pi)")
        return parse_throttled(text)
