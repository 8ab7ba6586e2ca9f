"""The bridge's cost on OctoPrint's comm thread: time per line in its gcode.queuing hook.

Feeds every command line of real sliced files, with the tags OctoPrint attaches
(``source:file``, ``filepos:N``, ``fileline:N``), through the plugin's hook body
(LayerFollower.on_line with the scanned table, and with the live fallback), side by side
with a hook that returns at once. Prints p50/p99 in microseconds per line.

    .venv/bin/python bench/bridge_hook.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from octoprint_printmesh.follow import LayerFollower
from octoprint_printmesh.layers import scan_file

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gcode"
FILES = ["prusa_zhop_purge", "cura_zhop_purge", "prusa_variable", "slic3r_plain_zhop"]


def lines_of(path: Path) -> list[tuple[frozenset[str], str]]:
    """(tags, line) as OctoPrint's hook sees them: comments stripped, filepos = bytes read."""
    out, pos, n = [], 0, 0
    for raw in path.read_bytes().splitlines(keepends=True):
        pos += len(raw)
        text = raw.decode("latin-1").split(";", 1)[0].strip()
        if text:
            n += 1
            out.append((frozenset({"source:file", f"filepos:{pos}", f"fileline:{n}"}), text))
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def measure(feed: Callable[[frozenset[str], str], None], lines: list[tuple[frozenset[str], str]]) -> list[float]:
    clock = time.perf_counter_ns
    samples = []
    for tags, line in lines:
        started = clock()
        feed(tags, line)
        samples.append((clock() - started) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    events: list[object] = []
    results: dict[str, list[float]] = {
        "bare hook (returns at once)": [],
        "bridge, scanned table": [],
        "bridge, live fallback": [],
    }
    total = 0
    for name in FILES:
        path = FIXTURES / f"{name}.gcode"
        lines = lines_of(path)
        table = scan_file(path).table
        for _ in range(args.rounds):
            marked, live = LayerFollower(events.append), LayerFollower(events.append)
            marked.begin(name, table)
            live.begin(name, None)
            results["bare hook (returns at once)"] += measure(lambda tags, line: None, lines)
            results["bridge, scanned table"] += measure(marked.on_line, lines)
            results["bridge, live fallback"] += measure(live.on_line, lines)
            total += len(lines)
    print(f"# bridge gcode.queuing hook, {total} lines per variant from {len(FILES)} real sliced files")
    bare = percentiles(results["bare hook (returns at once)"])
    for label, samples in results.items():
        p50, p99 = percentiles(samples)
        print(f"{label:30s} p50 {p50:6.2f} us  p99 {p99:6.2f} us   (+{p50 - bare[0]:.2f} us over bare at p50)")


if __name__ == "__main__":
    main()
