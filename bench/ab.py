"""Before and after, side by side: one benchmark run against two source trees in one session.

A refactor is judged by comparing its benchmarks with the tree it started from, but runs
made hours apart on a shared VM differ by more than the change being judged. This runs the
same benchmark script from each tree in alternating rounds (the order flips every round), with
``PYTHONPATH`` pointing at that tree's sources, so machine noise lands on both alike.

Every number in the benchmark's output is compared by position: a line's text with its numbers
masked is its key, so ``p50 2.73 us p99 44.7 us`` in both trees pairs 2.73 with its twin.
Prints the median of each number per tree and the ratio after ÷ before.

    .venv/bin/python bench/ab.py --before ../wt-base --after . --rounds 3 bridge_hook.py -- --rounds 5

A benchmark that is new in the changed tree runs against the old sources with ``--script-from after``:
the after tree's script file, each tree's sources.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

NUMBER = re.compile(r"(?<![A-Za-z_\d.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")  # not "p50", "x86"
SOURCES = ("core/src", "devkit/src", "bridge_octoprint/src", "coordinator/src", "agents/*/src")


def source_path(tree: Path) -> str:
    paths = [str(p) for pattern in SOURCES for p in sorted(tree.glob(pattern)) if p.is_dir()]
    return os.pathsep.join(paths)


def run(tree: Path, script: str, args: list[str], script_tree: Path | None = None) -> str:
    env = dict(os.environ, PYTHONPATH=source_path(tree))
    done = subprocess.run(
        [sys.executable, str((script_tree or tree) / "bench" / script), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{script} failed in {tree} (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def numbers_by_line(output: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for line in output.splitlines():
        values = [float(v) for v in NUMBER.findall(line)]
        if values:
            out[NUMBER.sub("#", line).strip()] = values
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the tree the change started from")
    parser.add_argument("--after", type=Path, default=Path("."), help="the changed tree (default: here)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--script-from", choices=("each", "after"), default="each",
        help="run each tree's own bench/<script> (default), or the after tree's against both trees' sources",
    )  # fmt: skip
    parser.add_argument("script", help="a file name in bench/ of both trees")
    parser.add_argument("args", nargs="*", help="arguments for the script (after --)")
    opts = parser.parse_args()
    trees = {"before": opts.before.resolve(), "after": opts.after.resolve()}
    seen: dict[str, dict[str, list[list[float]]]] = {"before": defaultdict(list), "after": defaultdict(list)}
    for r in range(opts.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        for name in order:
            script_tree = trees["after"] if opts.script_from == "after" else None
            for key, values in numbers_by_line(run(trees[name], opts.script, opts.args, script_tree)).items():
                seen[name][key].append(values)
        print(f"# round {r + 1}/{opts.rounds} done ({' then '.join(order)})", flush=True)
    print(f"# {opts.script} {' '.join(opts.args)}: median over {opts.rounds} rounds, after ÷ before")
    for key, before_rows in seen["before"].items():
        after_rows = seen["after"].get(key)
        if not after_rows:
            continue
        cells = []
        for i in range(min(len(before_rows[0]), len(after_rows[0]))):
            b = statistics.median(row[i] for row in before_rows if i < len(row))
            a = statistics.median(row[i] for row in after_rows if i < len(row))
            ratio = f"×{a / b:.2f}" if b else "—"
            cells.append(f"{b:g} → {a:g} ({ratio})")
        print(f"{key}\n    " + "; ".join(cells))


if __name__ == "__main__":
    main()
