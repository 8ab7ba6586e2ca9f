"""The bridge's layer outlines (``layers/outline.py``): what reading them costs beside the layer scan.

The outlines need every line interpreted, like the fallback table; the layer table from
slicer markers needs a light pass. All three run in this process on the same file, in turn,
for ``--rounds`` rounds; times are CPU seconds (``process_time``), the table shows the median
per pass, microseconds per line and the ratio to the marker scan. The file is
``bench/layer_scan.py``'s (the committed marker fixtures, ``--repeat`` times) and the 60-layer
tower of ``make_tall_part.py`` (a 48-sided part: the costliest hulls).

    .venv/bin/python bench/outline_scan.py [--rounds 5] [--repeat 8]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from layer_scan import FIXTURES, SOURCES
from make_tall_part import generate

from octoprint_printmesh.layers.outline import scan_outlines
from octoprint_printmesh.layers.scanner import scan_stream


def timed(fn: object) -> float:
    assert callable(fn)
    started = time.process_time()
    fn()
    return time.process_time() - started


def measure(name: str, data: bytes, rounds: int) -> None:
    stripped = b"\n".join(line.split(b";", 1)[0].rstrip() for line in data.splitlines()) + b"\n"
    table = scan_stream(io.BytesIO(data)).table
    passes = {
        "layer table (markers)": lambda: scan_stream(io.BytesIO(data)),
        "fallback table (every line)": lambda: scan_stream(io.BytesIO(stripped)),
        "outlines (every line)": lambda: scan_outlines(io.BytesIO(data), table),
    }
    times: dict[str, list[float]] = {k: [] for k in passes}
    for _ in range(rounds):
        for key, fn in passes.items():
            times[key].append(timed(fn))
    lines = data.count(b"\n")
    base = statistics.median(times["layer table (markers)"])
    print(f"\n{name}: {len(data) / 1e6:.1f} MB, {lines} lines, {table.total_layers} layers")
    print(f"  {'pass':<30}{'median s':>10}{'us/line':>10}{'x markers':>11}")
    for key, values in times.items():
        median = statistics.median(values)
        print(f"  {key:<30}{median:>10.3f}{median / lines * 1e6:>10.2f}{median / base:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=8, help="copies of the fixtures in the file")
    args = parser.parse_args()
    print(f"# outline_scan: Python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    fixtures = b"".join((FIXTURES / f"{name}.gcode").read_bytes() for name in SOURCES) * args.repeat
    measure(f"marker fixtures x{args.repeat}", fixtures, args.rounds)
    measure("60-layer tower (48-sided)", generate(60).encode(), args.rounds)


if __name__ == "__main__":
    main()
