"""Layer scanner speed: this tree's scanner and live fallback against another checkout's, side by side.

Both sides run the same files in child processes started alternately (``base, this, base,
this, ...``), each child importing the bridge from its own tree (``PYTHONPATH``), so a busy
machine slows both alike. Times are CPU seconds of the child (``process_time``: time spent
waiting for a CPU on a shared machine is not counted), the best of ``--inner`` runs per
child; the table shows the median over rounds. Three measurements per side:

* **markers**: ``scan_file`` of a file with PrusaSlicer and Cura markers (the light pass);
* **fallback**: ``scan_file`` of the same file with every comment stripped (every line
  interpreted by the motion model: the full pass);
* **live**: ``FallbackTracker.feed`` per comment-free line (the comm thread's fallback).

The file is the committed marker fixtures concatenated ``--repeat`` times (~6 MB at 8).

    .venv/bin/python bench/layer_scan.py --base /work/wt-base [--rounds 5] [--repeat 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "gcode"
SOURCES = ["prusa_zhop_purge", "prusa_variable", "prusa_relative_fwretract", "cura_zhop_purge", "cura_raft"]

CHILD = r"""
import json, sys, time
from octoprint_printmesh.layers import FallbackTracker, scan_file
marked, stripped, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = []
pos = 0
with open(stripped, "rb") as f:
    for raw in f:
        pos += len(raw)
        text = raw.decode("latin-1").strip()
        if text:
            lines.append((pos, text))
out = {}
for name, run in (
    ("markers", lambda: scan_file(marked)),
    ("fallback", lambda: scan_file(stripped)),
):
    best = []
    for _ in range(repeat):
        t = time.process_time()
        table = run().table
        best.append(time.process_time() - t)
    out[name] = min(best)
    out[name + "_layers"] = table.total_layers
best = []
for _ in range(repeat):
    tracker = FallbackTracker()
    t = time.process_time()
    fired = sum(tracker.feed(p, line) is not None for p, line in lines)
    best.append(time.process_time() - t)
out["live"] = min(best)
out["live_lines"] = len(lines)
out["live_layers"] = fired
import octoprint_printmesh
out["tree"] = octoprint_printmesh.__file__
print(json.dumps(out))
"""


def build_files(folder: Path, repeat: int) -> tuple[Path, Path]:
    data = b"".join((FIXTURES / f"{name}.gcode").read_bytes() for name in SOURCES) * repeat
    marked, stripped = folder / "marked.gcode", folder / "stripped.gcode"
    marked.write_bytes(data)
    lines = (line.split(b";", 1)[0].rstrip() for line in data.splitlines())
    stripped.write_bytes(b"\n".join(line for line in lines if line.strip()) + b"\n")
    return marked, stripped


def run_side(tree: Path, marked: Path, stripped: Path, inner: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=f"{tree / 'bridge_octoprint' / 'src'}{os.pathsep}{tree / 'core' / 'src'}")
    cmd = [sys.executable, "-c", CHILD, str(marked), str(stripped), str(inner)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    data: dict[str, float] = json.loads(result.stdout)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (e.g. the base commit)")
    parser.add_argument("--rounds", type=int, default=7, help="child processes per side, alternating")
    parser.add_argument("--inner", type=int, default=5, help="scans per child (the best counts)")
    parser.add_argument("--repeat", type=int, default=8, help="copies of the fixtures in the file")
    args = parser.parse_args()
    sides = {"base": args.base.resolve(), "this": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        marked, stripped = build_files(Path(tmp), args.repeat)
        size = marked.stat().st_size / 1e6
        print(f"# layer scan: {size:.1f} MB marked file, {stripped.stat().st_size / 1e6:.1f} MB stripped")
        for name, tree in sides.items():
            print(f"#   {name}: {tree}")
        results: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, tree in sides.items():
                results[name].append(run_side(tree, marked, stripped, args.inner))
    print(f"{'side':6s} {'markers MB/s':>13s} {'fallback MB/s':>14s} {'live us/line':>13s}  layers m/f/live")
    medians: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("markers", "fallback", "live")}
        medians[name] = med
        last = runs[-1]
        print(
            f"{name:6s} {size / med['markers']:13.1f} {size / med['fallback']:14.1f} "
            f"{med['live'] / last['live_lines'] * 1e6:13.2f}  "
            f"{last['markers_layers']:.0f}/{last['fallback_layers']:.0f}/{last['live_layers']:.0f}"
        )
    for key in ("markers", "fallback", "live"):
        ratio = medians["this"][key] / medians["base"][key]
        print(
            f"time this/base, {key}: {ratio:.3f}x  (per-round: "
            + ", ".join(
                f"{t['this'][key] / t['base'][key]:.2f}"
                for t in ({"this": a, "base": b} for a, b in zip(results["this"], results["base"], strict=True))
            )
            + ")"
        )


if __name__ == "__main__":
    main()
