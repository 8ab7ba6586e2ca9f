"""Sampling the host with psutil, plus the fallbacks small boards need.

A metric the host cannot provide is recorded with its reason and left out; it never
stops the agent, and it is logged once rather than on every sample.
"""

from __future__ import annotations

import logging
import os
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
from printmesh_host.probes import Probes, Unavailable

log = logging.getLogger("printmesh.host.metrics")


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
        if config.root != Path("/"):  # the host's /proc, e.g. mounted read-only at /host/proc in a container
            psutil.PROCFS_PATH = str(config.proc_path)
        self._reported: dict[str, str] = {}
        self._cpu_meter = CpuMeter()
        self._probes = Probes(config)
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
        return self._probes.temperature()

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
                du = psutil.disk_usage(str(self.config.on_host(mount)))  # reported as the host names it
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
        return self._probes.throttling()
