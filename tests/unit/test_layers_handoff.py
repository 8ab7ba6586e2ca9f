"""The layer follower's start and handoff, without a broker or OctoPrint (issue 10).

OctoPrint's comm thread is simulated by feeding the follower each fixture's lines with the
tags the hook gets (tests/layers_support.octoprint_lines). "Before its first extrusion"
is checked against the extruding lines read naively from the file, not by the code under test.
"""

from __future__ import annotations

import functools
import threading
from bisect import bisect_left
from pathlib import Path

import pytest
from layers_support import FIXTURES, REPO, naive_extrusions, octoprint_lines

from octoprint_printmesh.layer_follower import LayerFollower
from octoprint_printmesh.layers import Stamp, TableCache, scan_file, stamp_of
from printmesh_core import contract
from printmesh_core.models.layers import LayerEvent, LayerTable

CASES = REPO / "tests" / "fixtures" / "gcode_cases"
FILES = {
    "prusa_variable": FIXTURES / "prusa_variable.gcode",  # the case that raced in a real OctoPrint
    "purge_same_z": CASES / "purge_same_z.gcode",  # the live fallback fires layer 1 on its purge
    "cura_zhop_purge": FIXTURES / "cura_zhop_purge.gcode",  # Cura's purge line above the first layer
}
FIRST_LAYERS = 3  # every line position up to the start of this layer + 1


def tags(pos: int) -> frozenset[str]:
    return frozenset({"source:file", f"filepos:{pos}"})


class Comm:
    """What the hook's comm object tells about the file being printed."""

    def __init__(self, disk_path: str | None) -> None:
        self.disk_path = disk_path

    def getFilePosition(self) -> dict[str, object] | None:
        return None if self.disk_path is None else {"origin": "local", "filename": self.disk_path, "pos": 0}


def first_extrusion(table: LayerTable, extrusions: list[int], layer: int) -> int | None:
    """Filepos of layer ``layer``'s first extruding line per the table's bounds (None: it extrudes nothing)."""
    start = table.layers[layer - 1].file_pos
    end = table.layers[layer].file_pos if layer < table.total_layers else float("inf")
    i = bisect_left(extrusions, start)
    return extrusions[i] if i < len(extrusions) and extrusions[i] < end else None


@functools.cache
def scanned(path: Path) -> tuple[LayerTable, list[tuple[int, str]]]:
    return scan_file(path).table.model_copy(update={"path": path.name}), list(octoprint_lines(path))


def run(path: Path, *, install_before: int | None, cached: bool = False) -> tuple[list[LayerEvent], LayerTable]:
    """Print ``path`` through a follower; the scanned table arrives before line ``install_before``."""
    table, lines = scanned(path)
    tables = TableCache()
    stamp = stamp_of(str(path))
    assert stamp is not None
    if cached:
        tables.put(str(path), stamp, "marlin", table)
    events: list[LayerEvent] = []
    follower = LayerFollower(events.append, tables=tables)
    follower.select(path.name, str(path))
    comm = Comm(str(path))
    for i, (pos, line) in enumerate(lines):
        if i == install_before:  # as the worker does: into the cache, then to the follower
            tables.put(str(path), stamp, "marlin", table)
            follower.install(path.name, table)
        follower.on_line(tags(pos), line, comm)
    return events, table


def line_positions(path: Path, layer: int, table: LayerTable) -> int:
    """How many lines come before layer ``layer`` + 1 starts."""
    stop = table.layers[layer].file_pos
    return sum(1 for pos, _ in octoprint_lines(path) if pos < stop)


@pytest.mark.parametrize("name", list(FILES))
def test_handoff_at_every_line_of_the_first_layers(name):
    path = FILES[name]
    table = scan_file(path).table
    extrusions = naive_extrusions(path)
    for install_before in range(line_positions(path, FIRST_LAYERS, table) + 1):
        events, table = run(path, install_before=install_before)
        where = f"table installed before line {install_before}"
        assert [e.layer for e in events] == list(range(1, table.total_layers + 1)), where
        for event in events:
            first = first_extrusion(table, extrusions, event.layer)
            assert first is None or event.file_pos <= first, f"{where}: layer {event.layer} after its extrusion"
        # every layer the table announces is announced on its first line, with the table's data
        from_table = [e for e in events if e.total_layers is not None]  # the live tracker has no total
        assert from_table, where
        for event in from_table[1:]:
            assert event.file_pos == table.layers[event.layer - 1].file_pos, where
            assert event.total_layers == table.total_layers, where


@pytest.mark.parametrize("name", list(FILES))
def test_a_cached_table_follows_the_print_from_its_first_line(name):
    path = FILES[name]
    events, table = run(path, install_before=None, cached=True)
    assert [(e.layer, e.file_pos, e.source) for e in events] == [
        (x.layer, x.file_pos, table.source) for x in table.layers
    ]
    assert events[0].path == path.name


def test_with_the_table_cached_layer_1_is_never_the_purge():
    path = FILES["purge_same_z"]
    purge = naive_extrusions(path)[:2]
    events, table = run(path, install_before=None, cached=True)
    assert events[0].layer == 1 and events[0].file_pos == table.layers[0].file_pos > purge[-1]
    live, _ = run(path, install_before=None)  # without it, the live fallback cannot look ahead
    assert live[0].layer == 1 and live[0].file_pos == purge[0] and live[0].source == "fallback"


def test_a_cached_table_of_another_file_is_not_used():
    """The comm object names the file printed: a stale selection's table is not taken for it."""
    path, other = FILES["prusa_variable"], FILES["purge_same_z"]
    tables = TableCache()
    stamp = stamp_of(str(other))
    assert stamp is not None
    tables.put(str(other), stamp, "marlin", scan_file(other).table.model_copy(update={"path": other.name}))
    events: list[LayerEvent] = []
    follower = LayerFollower(events.append, tables=tables)
    follower.select(other.name, str(other))  # FileSelected of the new file not handled yet
    for pos, line in octoprint_lines(path):
        follower.on_line(tags(pos), line, Comm(str(path)))
    assert all(e.total_layers is None for e in events) and events[0].path is None
    assert [e.layer for e in events] == list(range(1, 21))


def test_the_table_arriving_on_another_thread_mid_print():
    """install() from the worker while the comm thread feeds: no layer lost or repeated."""
    path = FILES["prusa_variable"]
    table = scan_file(path).table.model_copy(update={"path": path.name})
    lines = list(octoprint_lines(path))
    for delay in range(0, 400, 20):
        events: list[LayerEvent] = []
        follower = LayerFollower(events.append)
        follower.select(path.name, str(path))
        go = threading.Event()

        def worker(n: int = delay, f: LayerFollower = follower, go: threading.Event = go) -> None:
            go.wait()
            for _ in range(n):
                pass
            f.install(path.name, table)

        thread = threading.Thread(target=worker)
        thread.start()
        go.set()
        for pos, line in lines:
            follower.on_line(tags(pos), line)
        thread.join()
        assert [e.layer for e in events] == list(range(1, 21))


def test_new_prints_are_found_on_the_comm_thread_and_a_late_end_does_not_cut_the_next():
    path = FILES["prusa_variable"]
    table = scan_file(path).table.model_copy(update={"path": path.name})
    lines = list(octoprint_lines(path))
    events: list[LayerEvent] = []
    follower = LayerFollower(events.append)
    follower.select(path.name, str(path))
    follower.started(path.name)  # PrintStarted handled before the first line
    for pos, line in lines:
        follower.on_line(tags(pos), line)
    follower.install(path.name, table)  # after the print: nothing changes
    assert [e.layer for e in events] == list(range(1, 21))
    # the next print starts before PrintDone of the first is handled (a queue plugin)
    events.clear()
    half = len(lines) // 2
    for pos, line in lines[:half]:
        follower.on_line(tags(pos), line)
    follower.end()  # PrintDone of the first print, late: must not end the second
    follower.started(path.name)
    for pos, line in lines[half:]:
        follower.on_line(tags(pos), line)
    assert [e.layer for e in events] == list(range(1, 21))
    follower.end()  # PrintDone of the second: the next file line starts a new print
    assert follower.tracker is None


def test_a_print_that_ended_before_its_first_line_keeps_the_count():
    """Counts stay in step after a print cancelled in its start script (no file line)."""
    lines = list(octoprint_lines(FILES["prusa_variable"]))
    events: list[LayerEvent] = []
    follower = LayerFollower(events.append)
    follower.started("a.gcode")
    follower.end()
    follower.started("b.gcode")
    for pos, line in lines[:50]:
        follower.on_line(tags(pos), line)
    for pos, line in lines[:10]:  # c began on the comm thread before b's end was handled
        follower.on_line(tags(pos), line)
    follower.end()
    assert follower.tracker is not None, "the late end of b left c alone"
    follower.started("c.gcode")
    follower.end()
    assert follower.tracker is None


# ------------------------------------------------------------------------ the cache
def test_cache_is_bounded_and_checks_version_and_flavour(tmp_path):
    tables = TableCache(limit=2)
    files = []
    for i in range(3):
        f = tmp_path / f"f{i}.gcode"
        f.write_text("G1 Z0.2\nG1 X1 Y1 E1\n")
        files.append(f)
    table = scan_file(files[0]).table
    stamps = [stamp_of(str(f)) for f in files]
    for f, stamp in zip(files, stamps, strict=True):
        assert stamp is not None
        tables.put(str(f), stamp, "marlin", table.model_copy(update={"path": f.name}))
    assert len(tables) == 2 and tables.get(str(files[0]), "marlin") is None  # least recently used out
    assert tables.get(str(files[2]), "marlin") is not None
    assert tables.get(str(files[2]), "klipper") is None  # read with another flavour
    assert stamps[2] is not None and tables.get(str(files[2]), "marlin", stamps[2]) is not None
    files[2].write_text("G1 Z0.3\nG1 X1 Y1 E1\nG1 X2 Y2 E2\n")
    assert tables.get(str(files[2]), "marlin", stamp_of(str(files[2]))) is None  # rewritten
    tables.forget("f2.gcode")
    assert tables.get(str(files[2]), "marlin") is None and tables.get(str(files[1]), "marlin") is not None
    assert stamp_of(str(tmp_path / "missing.gcode")) is None


def test_cache_forgets_a_folder():
    tables = TableCache()
    table = scan_file(FILES["purge_same_z"]).table
    for path in ("a/x.gcode", "a/b/y.gcode", "ab.gcode"):
        tables.put("/disk/" + path, Stamp(1, 1), "marlin", table.model_copy(update={"path": path}))
    tables.forget("a")
    assert tables.get("/disk/ab.gcode", "marlin") is not None
    assert tables.get("/disk/a/x.gcode", "marlin") is None and tables.get("/disk/a/b/y.gcode", "marlin") is None


# ------------------------------------------------------------------- the worker's scan
def test_the_worker_scans_a_file_version_once(tmp_path, monkeypatch):
    """Added, selected, started: one scan; published only for the print; a new version rescans."""
    from octoprint_printmesh import printer_node
    from octoprint_printmesh.settings import to_bridge_settings

    node = printer_node.PrinterNode(to_bridge_settings({"node_id": "scan"}), lambda message: None)  # never started
    scans, published, done = [], [], []
    real_scan = printer_node.scan_file
    monkeypatch.setattr(printer_node, "scan_file", lambda *a, **k: scans.append(a[0]) or real_scan(*a, **k))
    monkeypatch.setattr(node, "_retain", lambda topic, payload: published.append((topic, payload)))
    disk = tmp_path / "part.gcode"
    disk.write_bytes(FILES["purge_same_z"].read_bytes())
    for publish in (False, False, True):  # FileAdded, FileSelected, PrintStarted
        node._scan("part.gcode", str(disk), lambda path, table: done.append(table), "marlin", publish)
    assert len(scans) == 1 and len(done) == 3 and done[0] is done[2]
    assert [topic for topic, _ in published] == [contract.PRINTER_LAYERS] and published[0][1].path == "part.gcode"
    disk.write_bytes(disk.read_bytes() + b"G1 Z5\n")  # a new version of the file
    node._scan("part.gcode", str(disk), lambda path, table: done.append(table), "marlin", False)
    assert len(scans) == 2 and done[-1].file_size == disk.stat().st_size
    node._scan("gone.gcode", str(tmp_path / "gone.gcode"), lambda path, table: done.append(table), "marlin", True)
    assert len(done) == 4, "a file that cannot be read is skipped (and logged)"
