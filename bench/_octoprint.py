"""Shared by bridge_throughput.py and bridge_events.py: a real OctoPrint with the virtual
printer, with or without the printmesh plugin, a large real sliced gcode, and machine facts.

The server is started exactly as tests/octoprint_harness.py does (same basedir layout,
fixed API key, ``octoprint serve --iknowwhatimdoing``), with config.yaml overrides on top.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from octoprint_harness import API_KEY, OctoPrint, octoprint_venv, write_basedir  # noqa: E402

__all__ = ["OctoPrint"]  # re-exported for the benchmarks

from printmesh_devkit.broker import free_port, mosquitto_path  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "gcode"
CACHE = Path(os.environ.get("PRINTMESH_BENCH_CACHE", Path(tempfile.gettempdir()) / "printmesh-bench-gcode"))
# The virtual printer sleeps for every move: delta / F * 60 * 0.1 s, F scaled by M220 (XYZ)
# and M221 (E) in percent. 10^6 % makes the sleeps microseconds: the printer answers at once.
SPEEDUP = ["M220 S1000000", "M221 S1000000"]


# ------------------------------------------------------------------ the server
def merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


def start(
    basedir: Path,
    plugin_settings: dict[str, Any],
    *,
    plugin_enabled: bool = True,
    config: dict[str, Any] | None = None,
    single_file_plugins: dict[str, str] | None = None,
    cpus: set[int] | None = None,
    venv: Path | None = None,
    env: dict[str, str] | None = None,
) -> OctoPrint:
    """``octoprint serve`` on a free port; ``plugin_enabled=False`` adds printmesh to ``plugins._disabled``
    (OctoPrint then does not load it at all). ``single_file_plugins``: name -> source, put in
    ``BASEDIR/plugins/``. ``cpus``: the CPUs the server (all its threads) may run on. ``venv``:
    another OctoPrint virtualenv (default ``.venv-octoprint``); ``env``: extra environment."""
    prepare(basedir, plugin_settings, plugin_enabled=plugin_enabled, config=config,
            single_file_plugins=single_file_plugins, venv=venv)  # fmt: skip
    return serve(basedir, cpus=cpus, venv=venv, env=env)


def octoprint_exe(venv: Path | None = None) -> Path:
    exe = (venv or octoprint_venv()) / "bin" / "octoprint"
    if not exe.exists():
        raise SystemExit(f"no OctoPrint at {exe}: run ./scripts/test (it builds .venv-octoprint)")
    return exe


def prepare(
    basedir: Path,
    plugin_settings: dict[str, Any],
    *,
    plugin_enabled: bool = True,
    config: dict[str, Any] | None = None,
    single_file_plugins: dict[str, str] | None = None,
    venv: Path | None = None,
) -> None:
    """A basedir as tests/octoprint_harness.py makes it, with an admin and the fixed API key."""
    exe = octoprint_exe(venv)
    write_basedir(basedir, plugin_settings)
    conf = yaml.safe_load((basedir / "config.yaml").read_text())
    merge(conf, config or {})
    if not plugin_enabled:
        conf["plugins"]["_disabled"] = [*conf["plugins"]["_disabled"], "printmesh"]
    (basedir / "config.yaml").write_text(yaml.safe_dump(conf))
    for name, source in (single_file_plugins or {}).items():
        (basedir / "plugins").mkdir(exist_ok=True)
        (basedir / "plugins" / f"{name}.py").write_text(source)
    subprocess.run(
        [str(exe), "--basedir", str(basedir), "user", "add", "admin", "--password", "admin123", "--admin"],
        check=True, capture_output=True,
    )  # fmt: skip
    users = yaml.safe_load((basedir / "users.yaml").read_text())
    users["admin"]["apikey"] = API_KEY
    (basedir / "users.yaml").write_text(yaml.safe_dump(users))


def serve(
    basedir: Path, *, cpus: set[int] | None = None, venv: Path | None = None, env: dict[str, str] | None = None
) -> OctoPrint:
    """A fresh ``octoprint serve`` process on a prepared basedir (its uploads and analyses kept)."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    proc = subprocess.Popen(
        [str(octoprint_exe(venv)), "serve", "--basedir", str(basedir), "--host", "127.0.0.1", "--port", str(port),
         "--iknowwhatimdoing"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**clean, **(env or {})},
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )  # fmt: skip
    return OctoPrint(basedir, port, proc)


def pin_cpus(cpu: int | None) -> tuple[set[int] | None, str]:
    """The CPU set for OctoPrint (``{cpu}``) and this process's own set (the others, which the
    broker inherits). OctoPrint streams on one GIL: unpinned, its threads hop between CPUs and
    its speed depends on what else the machine runs (faster when the other CPU is busy)."""
    mine = os.sched_getaffinity(0)
    if cpu is None or len(mine) < 2:
        return None, "not pinned"
    if cpu < 0:
        cpu = max(mine)
    os.sched_setaffinity(0, mine - {cpu})
    return {cpu}, f"OctoPrint pinned to CPU {cpu}, this bench and mosquitto to {sorted(mine - {cpu})}"


def plugin_loaded(server: OctoPrint) -> bool:
    """Whether octoprint.log lists printmesh among the loaded plugins (and not as disabled)."""
    log = server.log()
    return "printmesh plugin" in log and "started (printmesh-core" in log


def upload_analysed(server: OctoPrint, name: str, data: bytes, timeout: float = 300) -> dict[str, Any]:
    """Upload without printing, and wait until OctoPrint's gcode analysis is done (it would
    otherwise run beside the first print)."""
    server.upload(name, data, print_now=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info: dict[str, Any] = server.api("GET", f"/api/files/local/{name}")
        if info.get("gcodeAnalysis") and not info.get("prints", {}).get("analysing"):
            return info
        time.sleep(0.5)
    raise TimeoutError(f"no gcode analysis of {name} within {timeout} s")


PROBE = '''"""Bench probe (written by bench/_octoprint.py): thread names for per-thread CPU; the process's
garbage collections (count and time per generation);
when RECORD is on, the time every event is fired and the time it reaches on_event; a driver
that sends G4 P0 through printer.commands() from a thread of its own; and, for diagnostics,
timing or removing another plugin's comm hooks in the running comm."""
import gc
import logging
import random
import threading
import time

import flask
import octoprint.plugin
from octoprint.events import EventManager

RECORD = {record!r}
FIRED, DELIVERED = [], []
HOOK_TIMES = {{}}  # phase -> [ns, calls]
# Python's garbage collections in this process, per generation: [count, ns]. A plugin's
# allocations on its own threads make collections come sooner, and a collection runs on
# whichever thread allocates when the threshold is crossed, OctoPrint's comm threads included.
GC = {{0: [0, 0], 1: [0, 0], 2: [0, 0]}}
_GC_STARTED = [0]


def _gc_timed(phase, info):
    if phase == "start":
        _GC_STARTED[0] = time.perf_counter_ns()
    else:
        totals = GC[info["generation"]]
        totals[0] += 1
        totals[1] += time.perf_counter_ns() - _GC_STARTED[0]


gc.callbacks.append(_gc_timed)
# The virtual printer logs every line both ways to plugin_virtual_printer_serial.log, with a
# flush each (two writes per line on the comm path, always on): a real printer costs
# OctoPrint nothing of the kind, so the bench turns that log off.
logging.getLogger("octoprint.plugins.virtual_printer.VirtualPrinter.serial").disabled = {quiet!r}

if RECORD:
    _fire = EventManager.fire

    def _timed_fire(self, event, payload=None):
        FIRED.append((event, time.time()))
        return _fire(self, event, payload)

    EventManager.fire = _timed_fire


class BenchProbe(octoprint.plugin.SimpleApiPlugin, octoprint.plugin.EventHandlerPlugin):
    def on_event(self, event, payload):
        if RECORD:
            DELIVERED.append((event, time.time()))

    def is_api_protected(self):
        return True

    def on_api_get(self, request):
        fired, delivered = list(FIRED), list(DELIVERED)
        if request.values.get("clear"):
            del FIRED[: len(fired)], DELIVERED[: len(delivered)]
        threads = {{str(t.native_id): t.name for t in threading.enumerate()}}
        return flask.jsonify(threads=threads, fired=fired, delivered=delivered,
                             gc={{str(g): list(v) for g, v in GC.items()}})

    def get_api_commands(self):
        return {{
            "drive": ["count", "burst", "gap_min", "gap_max"],
            "unhook": ["plugin", "phases"],
            "time_hooks": ["plugin", "on"],
        }}

    def _time_hooks(self, plugin, on):
        """Wrap (on) or unwrap a plugin's comm hooks with a perf_counter_ns accumulator; the
        callable OctoPrint registered (its own time_this wrapper around the plugin's method)
        is what gets timed. Returns the totals so far."""
        comm = self._printer._comm
        tables = {{phase: comm._gcode_hooks[phase] for phase in ("queuing", "sent")}}
        tables["received"] = comm._received_message_hooks
        for phase, hooks in tables.items():
            hook = hooks.get(plugin)
            if hook is None:
                continue
            original = getattr(hook, "bench_original", None)
            if not on and original is not None:
                hooks[plugin] = original
            elif on and original is None:
                totals = HOOK_TIMES.setdefault(phase, [0, 0])

                def timed(*args, _hook=hook, _totals=totals, **kwargs):
                    started = time.perf_counter_ns()
                    try:
                        return _hook(*args, **kwargs)
                    finally:
                        _totals[0] += time.perf_counter_ns() - started
                        _totals[1] += 1

                timed.bench_original = hook
                hooks[plugin] = timed
        return dict(HOOK_TIMES)

    def on_api_command(self, command, data):
        if command == "time_hooks":
            return flask.jsonify(hooks=self._time_hooks(data["plugin"], bool(data["on"])))
        if command == "unhook":  # diagnostics: take a plugin's comm hooks out of the running comm
            comm, removed = self._printer._comm, []
            for phase in data["phases"]:
                hooks = comm._received_message_hooks if phase == "received" else comm._gcode_hooks[phase]
                if hooks.pop(data["plugin"], None) is not None:
                    removed.append(phase)
            return flask.jsonify(removed=removed)

        gcode, tags = data.get("gcode", "G4 P0"), {{"source:plugin", "plugin:bench_probe"}}

        def pause():
            time.sleep(random.uniform(float(data["gap_min"]), float(data["gap_max"])))

        def drive():
            if data.get("while_printing"):  # from the print's start (up to 60 s away) to its end
                deadline = time.time() + 60
                while not self._printer.is_printing() and time.time() < deadline:
                    time.sleep(0.005)
                while self._printer.is_printing():
                    self._printer.commands([gcode] * int(data["burst"]), tags=tags)
                    pause()
                return
            for _ in range(int(data["count"])):
                self._printer.commands([gcode] * int(data["burst"]), tags=tags)
                pause()

        threading.Thread(target=drive, name="bench-probe-driver", daemon=True).start()
        return flask.jsonify(started=True)


__plugin_name__ = "bench probe"
__plugin_pythoncompat__ = ">=3.7,<4"
__plugin_implementation__ = BenchProbe()
'''


def probe_source(record_events: bool, quiet_virtual_log: bool = True) -> str:
    """A single-file plugin ``bench_probe`` (identifier sorts before ``printmesh``, so its
    on_event runs first): GET /api/plugin/bench_probe answers thread names and event times;
    POST ``drive`` sends G4 P0 (or ``gcode``) from its own thread, ``count`` times or
    ``while_printing``, ``time_hooks`` and ``unhook`` act on a
    plugin's comm hooks. ``quiet_virtual_log`` disables the virtual printer's own per-line
    serial log."""
    return PROBE.format(record=record_events, quiet=quiet_virtual_log)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread id (utime + stime)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, all CPUs (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def wait_quiet(max_cores: float = 0.3, window: float = 1.0, timeout: float = 120.0) -> float:
    """Wait until the whole machine used at most ``max_cores`` over ``window`` seconds (the
    bench's servers idle, nothing else running): other jobs on a shared machine skew a print.
    Returns the seconds waited (gives up after ``timeout``)."""
    started = time.monotonic()
    while True:
        busy0, steal0 = machine_cpu()
        time.sleep(window)
        busy1, steal1 = machine_cpu()
        if (busy1 - busy0 + steal1 - steal0) / window <= max_cores or time.monotonic() - started > timeout:
            return time.monotonic() - started


# ------------------------------------------------------------------ the gcode
def printable(data: bytes) -> bytes:
    """Heat-up waits disabled at the same length (as tests/test_bridge_layers.py does)."""
    return re.sub(rb"(?m)^M1(09|90)\b", b"M117", data)


def command_lines(data: bytes) -> list[str]:
    """The lines OctoPrint sends from the file: comments stripped, blanks skipped."""
    out = []
    for raw in data.splitlines():
        text = raw.decode("latin-1").split(";", 1)[0].strip()
        if text:
            out.append(text)
    return out


def _cylinder_stl(path: Path, r: float, h: float, n: int = 96) -> None:
    def facet(*pts: tuple[float, float, float]) -> str:
        vertices = "".join(f"vertex {x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in pts)
        return f"facet normal 0 0 0\nouter loop\n{vertices}endloop\nendfacet\n"

    pts = [(r * math.cos(2 * math.pi * i / n), r * math.sin(2 * math.pi * i / n)) for i in range(n)]
    body = []
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        body += [facet((x0, y0, 0), (x1, y1, 0), (x1, y1, h)), facet((x0, y0, 0), (x1, y1, h), (x0, y0, h))]
        body += [facet((0, 0, 0), (x1, y1, 0), (x0, y0, 0)), facet((0, 0, h), (x0, y0, h), (x1, y1, h))]
    path.write_text("solid cyl\n" + "".join(body) + "endsolid cyl\n")


PRUSA_ARGS = [
    "--export-gcode", "--center", "100,100", "--fill-density", "20%", "--layer-height", "0.1",
    "--first-layer-height", "0.2", "--temperature", "200", "--bed-temperature", "60",
]  # fmt: skip


def large_gcode(height_mm: float = 20.0) -> tuple[bytes, str]:
    """A real sliced file: PrusaSlicer, a 40 mm x ``height_mm`` cylinder at 0.1 mm layers with
    20 % infill (~3,800 command lines per mm). Sliced once and cached. Without prusa-slicer,
    the committed fixtures concatenated (also real slicer output, but many small prints)."""
    slicer = shutil.which("prusa-slicer")
    if slicer is None:
        names = sorted(p.stem for p in FIXTURES.glob("prusa_*.gcode") if "crlf" not in p.stem)
        one = b"\n".join((FIXTURES / f"{n}.gcode").read_bytes().rstrip(b"\n") for n in names) + b"\n"
        repeats = max(1, int(height_mm * 3800 / len(command_lines(one))))
        return one * repeats, f"{repeats} x the {len(names)} committed prusa_* fixtures (no prusa-slicer)"
    help_text = subprocess.run([slicer, "--help"], capture_output=True, text=True, check=False).stdout
    version = next((line.split()[0] for line in help_text.splitlines() if line.startswith("PrusaSlicer")), "")
    key = hashlib.sha256(f"{version}|{height_mm}|{PRUSA_ARGS}".encode()).hexdigest()[:12]
    out = CACHE / f"cylinder-{key}.gcode"
    what = f"{version or 'PrusaSlicer'}: 40 mm cylinder x {height_mm:g} mm, 0.1 mm layers, 20 % infill"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="printmesh-slice-") as work:
            stl = Path(work) / "cyl.stl"
            _cylinder_stl(stl, 20.0, height_mm)
            env = {**os.environ, "HOME": work}  # PrusaSlicer writes its config dir under $HOME
            tmp = Path(work) / "out.gcode"
            done = subprocess.run(
                [slicer, *PRUSA_ARGS, "--output", str(tmp), str(stl)], capture_output=True, text=True, env=env
            )
            if done.returncode != 0 or not tmp.exists():
                raise SystemExit(f"prusa-slicer failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
            shutil.move(tmp, out)
    return out.read_bytes(), what


# ------------------------------------------------------------------ facts
def git_head() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "bridge_octoprint"], capture_output=True)
    return done.stdout.strip() + (" (bridge_octoprint has uncommitted changes)" if dirty.stdout.strip() else "")


def machine_facts() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    exe = mosquitto_path()
    mosq = "?"
    if exe:
        words = subprocess.run([exe, "-h"], capture_output=True, text=True, check=False).stdout.split()
        mosq = words[2] if len(words) > 2 else "?"
    octo = subprocess.run(
        [str(octoprint_venv() / "bin" / "python"), "-c", "import octoprint; print(octoprint.__version__)"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return (
        f"# {os.cpu_count()} CPUs ({platform.machine()}), load average {load}; python {platform.python_version()},"
        f" OctoPrint {octo or '?'}, mosquitto {mosq}\n# {git_head()}"
    )


def spread(values: list[float]) -> str:
    """min-max as a +-% of the median."""
    if len(values) < 2:
        return "-"
    ordered = sorted(values)
    mid = statistics.median(ordered)
    return f"{(ordered[0] - mid) / mid * 100:+.1f}/{(ordered[-1] - mid) / mid * 100:+.1f}%"
