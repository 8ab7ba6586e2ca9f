"""OctoPrint's own dispatch of one queued line, with and without the bridge's queuing hook.

Runs OctoPrint 1.11's real ``MachineCom._process_command_phase("queuing", ...)`` (the code the
comm thread runs for every file line) on a ``MachineCom`` made without a serial port, over
every command line of bench/make_tall_part.py's file (the one bridge_throughput.py prints),
with the tags OctoPrint attaches. The hooks are wrapped the way OctoPrint registers them
(``octoprint.util.time_this``). Arms, timed in turn, ``--rounds`` times each:

* no hook: what OctoPrint does for a line without a plugin;
* bare hook: a hook that returns None at once (OctoPrint's per-hook cost: the wrapper, the
  call, ``_normalize_command_handler_result`` and its ``tags_to_add`` set);
* printmesh: the plugin's ``CommHooks.on_gcode_queuing`` following the file's scanned layer
  table, a hold plan armed for a layer the file never reaches (every layer start runs the
  hold decision), modes and fans tracked;
* printmesh, body alone: the same hook called directly, without OctoPrint around it.

Hot-loop numbers: in the running server the same code runs colder (caches shared with four
busy threads), so bridge_throughput.py's per-thread CPU is the figure that counts; this one
says which part is whose. Needs the OctoPrint venv:

    .venv-octoprint/bin/python bench/bridge_dispatch.py [--rounds 30] [--layers 122]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge_hook import hooks_for, lines_of
from make_tall_part import generate
from octoprint.util import time_this
from octoprint.util.comm import MachineCom, gcode_and_subcode_for_cmd

from octoprint_printmesh.layers import scan_file

Line = tuple[frozenset[str], str, Any, Any]


class Profiles:
    def get_current_or_default(self) -> dict[str, Any]:
        return {"heatedBed": True, "heatedChamber": False, "extruder": {"count": 1}}


def machine_com(hooks: dict[str, Callable[..., Any]]) -> MachineCom:
    """A MachineCom with only what the queuing phase reads (no port, no threads)."""
    comm = MachineCom.__new__(MachineCom)
    comm._phaseLogger = logging.getLogger("bench.phase")
    comm._gcode_hooks = {"queuing": hooks, "queued": {}, "sending": {}, "sent": {}}
    comm.isStreaming = lambda: False  # type: ignore[method-assign]
    comm.isPrinting = lambda: True  # type: ignore[method-assign]
    comm._emergency_commands, comm._pausing_commands = ["M112", "M108", "M410"], ["M0", "M1", "M25"]
    comm._blocked_commands, comm._ignored_commands = ["M0", "M1"], []
    comm._printerProfileManager = Profiles()
    comm._connection_closing = True  # __del__ closes nothing
    return comm


def wrapped(hook: Callable[..., Any]) -> Callable[..., Any]:
    """As OctoPrint's plugin manager hands hooks to the comm layer (plugin/core.py get_hooks)."""
    return time_this(logtarget="octoprint.plugins.timings", expand_logtarget=True)(hook)  # type: ignore[no-any-return]


def bare(comm: Any, phase: str, cmd: str, cmd_type: Any, gcode: Any, subcode: Any = None, tags: Any = None) -> None:
    return None


def per_line(run: Callable[[list[Line]], None], lines: list[Line], rounds: int) -> float:
    """Median over rounds of the mean time per line, microseconds."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        run(lines)
        samples.append((time.perf_counter_ns() - started) / len(lines) / 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--layers", type=int, default=122)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="printmesh-bench-dispatch-")) / "tall.gcode"
    path.write_bytes(generate(args.layers).encode())
    table = scan_file(path).table
    heated = {"M104", "M109", "M140", "M190", "M141", "M191", "T0", "T1"}  # need a live printer; M117 in the bench
    lines = [(t, c, *gcode_and_subcode_for_cmd(c)) for t, c in lines_of(path) if c.split()[0] not in heated]
    phase = MachineCom._process_command_phase

    def through(make: Callable[[], MachineCom]) -> Callable[[list[Line]], None]:
        def run(batch: list[Line]) -> None:
            comm = make()  # a fresh follower per round: every layer start is crossed again
            for tags, cmd, gcode, subcode in batch:
                phase(comm, "queuing", cmd, gcode=gcode, subcode=subcode, tags=set(tags))

        return run

    def body(batch: list[Line]) -> None:
        hook = hooks_for(table, "tall").on_gcode_queuing
        for tags, cmd, gcode, subcode in batch:
            hook(None, "queuing", cmd, None, gcode, subcode=subcode, tags=set(tags))

    arms = {
        "no hook": through(lambda: machine_com({})),
        "bare hook": through(lambda: machine_com({"bare": wrapped(bare)})),
        "printmesh": through(lambda: machine_com({"printmesh": wrapped(hooks_for(table, "tall").on_gcode_queuing)})),
        "printmesh, body alone": body,
    }
    results = {name: per_line(run, lines, args.rounds) for name, run in arms.items()}
    print(f"# OctoPrint queuing phase, {len(lines)} lines of make_tall_part.py --layers {args.layers} ({table.style})")
    base = results["no hook"]
    for name, us in results.items():
        extra = "" if name.endswith("alone") else f"   +{us - base:5.2f} over no hook"
        print(f"{name:24s} {us:6.2f} us per line{extra}")


if __name__ == "__main__":
    main()
