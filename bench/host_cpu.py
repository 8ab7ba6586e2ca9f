"""Host agent CPU time per sample: printmesh's Sampler vs a bare psutil sample of the same metrics.

* ``printmesh``: what the host agent does on every tick, minus the network:
  ``Sampler.sample()`` (pydantic HostState), ``HostState.to_json()`` (the published
  payload) and ``host_entities()`` + ``command_entities()`` (the discovery entity list the
  agent rebuilds each sample to detect a changed set).
* ``bare psutil``: cpu_percent (total and per core), getloadavg, sensors_temperatures,
  cpu_freq, virtual_memory, swap_memory, disk_usage('/'), boot_time, and json.dumps of a
  dict holding the same figures.

Both run in alternating blocks; CPU is ``time.process_time()`` (this process, all threads)
plus the CPU of waited-for child processes (``getrusage(RUSAGE_CHILDREN)``), since a
reader that runs a tool (vcgencmd) spends its time in a child. Prints figures and the
ratio; asserts nothing.

    .venv/bin/python bench/host_cpu.py [-n 500] [--block 50] [--pause 0] [--fake-vcgencmd]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from printmesh_core.models.host import HostState
from printmesh_host import metrics
from printmesh_host.config import HostConfig
from printmesh_host.entities import command_entities, host_entities
from printmesh_host.metrics import Sampler

STATE_TOPIC = "printmesh/benchnode/host/state"
FAKE_VCGENCMD = """#!/bin/sh
case "$1" in
  measure_temp) echo "temp=48.3'C" ;;
  get_throttled) echo "throttled=0x0" ;;
  *) exit 1 ;;
esac
"""


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


BARE_CALLS: dict[str, Callable[[], Any]] = {
    "cpu_percent(percpu) + cpu_percent()": lambda: (psutil.cpu_percent(percpu=True), psutil.cpu_percent()),
    "os.getloadavg()": os.getloadavg,
    "sensors_temperatures()": psutil.sensors_temperatures,
    "cpu_freq()": psutil.cpu_freq,
    "virtual_memory()": psutil.virtual_memory,
    "swap_memory()": psutil.swap_memory,
    "disk_usage('/')": lambda: psutil.disk_usage("/"),
    "boot_time()": psutil.boot_time,
}


def bare_sample() -> bytes:
    per_core = psutil.cpu_percent(percpu=True)
    total = psutil.cpu_percent()
    load1, load5, load15 = os.getloadavg()
    temps = psutil.sensors_temperatures()
    temp = next((e.current for entries in temps.values() for e in entries), None)
    freq = psutil.cpu_freq()
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    du = psutil.disk_usage("/")
    boot = psutil.boot_time()
    doc: dict[str, Any] = {
        "ts": round(time.time(), 3),
        "cpu": {"percent": total, "per_core": per_core, "count": len(per_core)},
        "load": {"load1": round(load1, 2), "load5": round(load5, 2), "load15": round(load15, 2)},
        "temperature": {"celsius": temp} if temp is not None else None,
        "frequency": {"current_mhz": freq.current, "min_mhz": freq.min, "max_mhz": freq.max} if freq else None,
        "memory": {"total": vm.total, "used": vm.used, "available": vm.available, "percent": vm.percent},
        "swap": {"total": sw.total, "used": sw.used, "free": sw.free, "percent": sw.percent},
        "storage": {"/": {"total": du.total, "used": du.used, "free": du.free, "percent": du.percent}},
        "uptime": {"seconds": round(time.time() - boot, 1), "boot_time": boot},
    }
    return json.dumps(doc).encode()


class PrintmeshTick:
    """One agent tick without the network; optionally times each part."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.sampler = Sampler(config)
        self.parts: dict[str, float] = defaultdict(float)
        self.last: HostState | None = None

    def __call__(self) -> bytes:
        state = self.sampler.sample()
        payload = state.to_json()
        entities = host_entities(state, STATE_TOPIC, self.config)
        entities += command_entities(self.config, {})
        self.last = state
        return payload

    def timed(self) -> bytes:
        c0 = time.process_time()
        state = self.sampler.sample()
        c1 = time.process_time()
        payload = state.to_json()
        c2 = time.process_time()
        host_entities(state, STATE_TOPIC, self.config)
        command_entities(self.config, {})
        c3 = time.process_time()
        self.parts["Sampler.sample() total"] += c1 - c0
        self.parts["HostState.to_json()"] += c2 - c1
        self.parts["host_entities() + command_entities()"] += c3 - c2
        return payload

    def instrument_readers(self) -> None:
        """Wrap each reader of the sampler to time it inside real sample() calls."""
        readers: dict[str, Callable[[], Any]] = self.sampler._readers  # bench only: private on purpose
        for name, fn in list(readers.items()):
            readers[name] = timed_call(self.parts, name, fn)


def timed_call(parts: dict[str, float], name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` wrapped to add its own and its children's CPU time to ``parts``."""

    def timed_reader() -> Any:
        c0 = time.process_time()
        ch0 = children_cpu()
        try:
            return fn()
        finally:
            parts[f"  reader {name}"] += time.process_time() - c0
            parts[f"  reader {name} (child processes)"] += children_cpu() - ch0

    return timed_reader


def run_blocks(
    fns: dict[str, Callable[[], bytes]], n: int, block: int, pause: float
) -> dict[str, tuple[float, float, float]]:
    """Per-sample (process CPU, children CPU, wall) seconds, alternating blocks with rotating order.

    With ``pause``, each sample is followed by a sleep (not counted), as in the agent's
    loop, so caches are as cold as they are once per interval.
    """
    cpu: dict[str, float] = dict.fromkeys(fns, 0.0)
    child: dict[str, float] = dict.fromkeys(fns, 0.0)
    wall: dict[str, float] = dict.fromkeys(fns, 0.0)
    names = list(fns)
    done = 0
    b = 0
    while done < n:
        count = min(block, n - done)
        for name in names[b % len(names) :] + names[: b % len(names)]:
            fn = fns[name]
            if pause <= 0:
                w0, c0, ch0 = time.perf_counter(), time.process_time(), children_cpu()
                for _ in range(count):
                    fn()
                cpu[name] += time.process_time() - c0
                child[name] += children_cpu() - ch0
                wall[name] += time.perf_counter() - w0
                continue
            for _ in range(count):
                w0, c0, ch0 = time.perf_counter(), time.process_time(), children_cpu()
                fn()
                cpu[name] += time.process_time() - c0
                child[name] += children_cpu() - ch0
                wall[name] += time.perf_counter() - w0
                time.sleep(pause)
        done += count
        b += 1
    return {k: (cpu[k] / n, child[k] / n, wall[k] / n) for k in names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500, help="samples per side (default 500)")
    parser.add_argument("--block", type=int, default=50, help="samples per block; blocks alternate (default 50)")
    parser.add_argument(
        "--fake-vcgencmd",
        action="store_true",
        help="give the printmesh sampler a vcgencmd stand-in (a /bin/sh script), as on a Raspberry Pi",
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="sleep this many seconds after each sample (not counted), like the agent's interval (default 0)",
    )
    args = parser.parse_args()
    # the sampler logs each unavailable metric once; the header line below lists them instead
    logging.getLogger("printmesh").setLevel(logging.ERROR)

    tmp = Path(tempfile.mkdtemp(prefix="printmesh-bench-"))
    extra: dict[str, Any] = {}
    if args.fake_vcgencmd:
        tool = tmp / "vcgencmd"
        tool.write_text(FAKE_VCGENCMD)
        tool.chmod(0o755)
        extra["vcgencmd"] = str(tool)
    config = HostConfig(interval=1.0, **extra)

    # The agent samples every `interval` seconds (>= 0.5 s). CpuMeter, where present, answers
    # from a cache when asked again within MIN_SPAN; a tight loop would hit that cache every
    # time, so let every sample read /proc/stat as the real agent does.
    meter = getattr(metrics, "CpuMeter", None)
    if meter is not None and hasattr(meter, "MIN_SPAN"):
        meter.MIN_SPAN = 0.0

    tick = PrintmeshTick(config)
    psutil.cpu_percent(percpu=True)
    psutil.cpu_percent()
    fns: dict[str, Callable[[], bytes]] = {"printmesh": tick, "bare psutil": bare_sample}
    for fn in fns.values():  # warm-up: imports, caches, first readings
        for _ in range(20):
            fn()
    res = run_blocks(fns, args.n, args.block, args.pause)

    # where printmesh's time goes (a separate pass, so the wrappers do not bias the comparison)
    tick.instrument_readers()
    tick.parts.clear()
    parts_n = max(100, args.n // 2)
    for _ in range(parts_n):
        tick.timed()

    # the cost of the timing wrapper itself, included in each "reader" line above
    noop_parts: dict[str, float] = defaultdict(float)
    noop = timed_call(noop_parts, "noop", lambda: None)
    for _ in range(parts_n):
        noop()
    wrapper_cost = sum(noop_parts.values())

    bare_parts: dict[str, float] = {}
    for name, call in BARE_CALLS.items():
        c0 = time.process_time()
        for _ in range(parts_n):
            call()
        bare_parts[name] = time.process_time() - c0
    doc = json.loads(bare_sample())
    c0 = time.process_time()
    for _ in range(parts_n):
        json.dumps(doc)
    bare_parts["json.dumps(dict)"] = time.process_time() - c0

    state = tick.last
    print(
        f"# host_cpu: {args.n} samples per side, alternating blocks of {args.block}"
        + (f", {args.pause} s pause after each sample" if args.pause > 0 else ", back to back")
    )
    print(
        f"# python {platform.python_version()}, psutil {psutil.__version__}, {os.cpu_count()} CPUs,"
        f" {platform.machine()}, vcgencmd: {config.vcgencmd if args.fake_vcgencmd else 'default (not on PATH here)'}"
    )
    if state is not None:
        present = [k for k in ("cpu", "load", "temperature", "frequency", "memory", "swap", "storage", "uptime",
                               "throttling") if getattr(state, k) is not None]  # fmt: skip
        print(f"# printmesh metrics present: {', '.join(present)}")
        for name, reason in state.unavailable.items():
            print(f"# printmesh unavailable: {name}: {reason}")
    print(f"{'side':<14}{'cpu ms/sample':>15}{'child ms':>10}{'total ms':>10}{'wall ms':>10}")
    for name, (cpu, child, wall) in res.items():
        print(f"{name:<14}{cpu * 1e3:>15.3f}{child * 1e3:>10.3f}{(cpu + child) * 1e3:>10.3f}{wall * 1e3:>10.3f}")
    pm_cpu, pm_child, pm_wall = res["printmesh"]
    b_cpu, b_child, b_wall = res["bare psutil"]
    print()
    print(
        f"ratio printmesh/bare: cpu {pm_cpu / b_cpu:.2f}x, cpu incl. children"
        f" {(pm_cpu + pm_child) / (b_cpu + b_child):.2f}x, wall {pm_wall / b_wall:.2f}x   (goal: <= 1.5x)"
    )
    print()
    print(f"printmesh breakdown, CPU ms per sample ({parts_n} instrumented samples):")
    for part, seconds in tick.parts.items():
        if part.endswith("(child processes)") and seconds == 0:
            continue
        print(f"  {part:<48}{seconds / parts_n * 1e3:>8.3f}")
    print(f"  (timing wrapper overhead, included in each reader line: ~{wrapper_cost / parts_n * 1e3:.3f})")
    print(f"bare breakdown, CPU ms per call ({parts_n} calls each, in isolation):")
    for part, seconds in bare_parts.items():
        print(f"  {part:<48}{seconds / parts_n * 1e3:>8.3f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
