"""The bridge's cost on OctoPrint's comm thread: time per line in its gcode hooks.

Feeds every command line of real sliced files, with the tags OctoPrint attaches
(``source:file``, ``filepos:N``, ``fileline:N``), through the plugin's own hook bodies
(``comm_hooks.CommHooks.on_gcode_queuing``, called as OctoPrint calls it, with ``subcode``
and ``tags`` by keyword; the plugin's only per-line hook: layers with the scanned table or
the live fallback, a hold plan armed so every layer boundary runs the hold decision, and the
modes and fans it tracks), side by side with a hook that returns at once. Prints p50/p99 in
microseconds per line. ``bench/ab.py --script-from after`` runs it against an older tree.

    .venv/bin/python bench/bridge_hook.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from octoprint_printmesh.comm_hooks import CommHooks
from octoprint_printmesh.hold.types import Armed, HoldCommand, PrintStarted
from octoprint_printmesh.layer_follower import LayerFollower
from octoprint_printmesh.layers import scan_file
from octoprint_printmesh.printer_node import PrinterNode
from octoprint_printmesh.settings import to_bridge_settings

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


def hooks_for(table: object | None, name: str) -> CommHooks:
    """The plugin's hooks on a node that is never started (publishing only queues), with a
    hold plan armed for a layer no file reaches: every boundary runs the hold decision."""
    node = PrinterNode(to_bridge_settings({"node_id": "bench"}), lambda message: None)
    node.holds.feed(PrintStarted(name))
    node.holds.feed(HoldCommand("bench", plan=Armed(frozenset({99_999}))))
    follower = LayerFollower(node.record_layer, node.holds.at_layer)
    follower.begin(name, table)  # type: ignore[arg-type]
    hooks = CommHooks()
    hooks.attach(follower, node.holds, node.record_fan)
    return hooks


def layer_starts(rounds: int) -> list[float]:
    """The extra cost on a layer's first line (once per layer): the hold decision under its lock.
    It dominates the per-line p99 above, since 1-2 % of a file's lines start a layer."""
    from printmesh_core.models.layers import LayerEvent

    samples: list[float] = []
    for _ in range(rounds * 10):
        hooks = hooks_for(None, "layers")
        for layer in range(1, 101):
            event = LayerEvent(layer=layer, z=layer * 0.2, file_pos=layer, total_layers=100, source="markers")
            started = time.perf_counter_ns()
            assert hooks.holds is not None
            hooks.holds.at_layer(event, "G1 Z1")
            samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    results: dict[str, list[float]] = {
        "bare hook (returns at once)": [],
        "queuing, scanned table": [],
        "queuing, live fallback": [],
        "of which modes and fans": [],
    }
    total = 0
    for name in FILES:
        path = FIXTURES / f"{name}.gcode"
        lines = lines_of(path)
        table = scan_file(path).table
        for _ in range(args.rounds):
            marked, live = hooks_for(table, name), hooks_for(None, name)

            def queuing(tags: frozenset[str], line: str, hooks: CommHooks = marked) -> None:
                hooks.on_gcode_queuing(None, "queuing", line, None, line.split(" ", 1)[0], subcode=None, tags=tags)

            def fallback(tags: frozenset[str], line: str, hooks: CommHooks = live) -> None:
                hooks.on_gcode_queuing(None, "queuing", line, None, line.split(" ", 1)[0], subcode=None, tags=tags)

            def track(tags: frozenset[str], line: str, hooks: CommHooks = marked) -> None:
                hooks.track(line.split(" ", 1)[0], line)

            results["bare hook (returns at once)"] += measure(lambda tags, line: None, lines)
            results["queuing, scanned table"] += measure(queuing, lines)
            results["queuing, live fallback"] += measure(fallback, lines)
            results["of which modes and fans"] += measure(track, lines)
            total += len(lines)
    results["hold decision, layer-start lines only"] = layer_starts(args.rounds)
    print(f"# bridge comm-thread hooks, {total} lines per variant from {len(FILES)} real sliced files")
    bare = percentiles(results["bare hook (returns at once)"])
    for label, samples in results.items():
        p50, p99 = percentiles(samples)
        print(f"{label:30s} p50 {p50:6.2f} us  p99 {p99:6.2f} us   (+{p50 - bare[0]:.2f} us over bare at p50)")


if __name__ == "__main__":
    main()
