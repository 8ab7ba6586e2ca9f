"""Exact layer events from a real print of real slicer output, inside a real OctoPrint.

The expected tables were written from the slicers' settings (tests/fixtures/gcode), not by
the code under test. "Before any extrusion of layer N" is checked against OctoPrint's own
serial log: the layer event's timestamp must not be later than the moment the first
extruding line of layer N was sent to the printer.
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from octoprint_harness import OctoPrint, start_octoprint
from printing import FIXTURES, command_lines, is_extrusion, marks_in, printable, sent_times

from octoprint_printmesh.layers.outline import scan_outlines
from octoprint_printmesh.layers.scanner import scan_stream
from printmesh_core.models.layers import LayerEvent, LayerOutlines, LayerTable
from printmesh_devkit.broker import LocalBroker

NODE = "octo2"
BASE = f"printmesh/{NODE}/printer"


@pytest.fixture
def octoprint(broker: LocalBroker, tmp_path: Path) -> Iterator[OctoPrint]:
    server = start_octoprint(
        tmp_path / "octoprint", {"node_id": NODE, "mqtt": {"host": "127.0.0.1", "port": broker.port}}
    )
    try:
        server.wait_operational()
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["prusa_zhop_purge", "cura_zhop_purge", "prusa_variable"])
def test_layer_events_match_the_sliced_file_and_precede_its_extrusion(observer, octoprint, name):
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    data = printable(name)
    octoprint.api("POST", "/api/printer/command", {"commands": ["M220 S1000", "M221 S1000"]})
    mark = observer.mark()
    octoprint.upload(f"{name}.gcode", data)
    observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=180)
    events = [LayerEvent.model_validate_json(m.payload) for m in observer.messages[mark:] if m.topic == f"{BASE}/layer"]
    table = LayerTable.model_validate(observer.topic(f"{BASE}/layers", after=mark))
    assert table.total_layers == expected["total_layers"] and table.style == expected["style"]
    assert [round(row.z, 3) for row in table.layers] == [round(row["z"], 3) for row in expected["layers"]]
    # the events: one per layer, in order, with the table's heights (the first may come from
    # the live fallback if the print outran the scan, and then carries the same layer)
    assert [e.layer for e in events] == list(range(1, expected["total_layers"] + 1)), [e.layer for e in events]
    assert [round(e.z, 3) for e in events[1:]] == [round(row["z"], 3) for row in expected["layers"][1:]]
    # before any extrusion of layer N reached the printer
    commands = command_lines(data)
    sends = sent_times(octoprint.serial_log(), [c for _, c in commands])
    assert len(sends) == len(commands), "every file line was found in the serial log"
    starts = [row["offset"] for row in expected["layers"]] + [len(data)]
    for event, (begin, end) in zip(events, itertools.pairwise(starts), strict=False):
        first = next(i for i, (off, cmd) in enumerate(commands) if begin <= off < end and is_extrusion(cmd))
        # ts is rounded to the ms, the log truncates to the ms: 1.5 ms is the resolution of the comparison
        assert event.ts <= sends[first] + 0.0015, f"layer {event.layer} announced after its first extrusion was sent"


def test_events_need_no_markers_fallback_on_a_file_without_comments(observer, octoprint):
    expected = json.loads((FIXTURES / "prusa_zhop_purge.json").read_text())
    stripped = b"\n".join(line.split(b";", 1)[0].rstrip() for line in printable("prusa_zhop_purge").splitlines())
    octoprint.api("POST", "/api/printer/command", {"commands": ["M220 S1000", "M221 S1000"]})
    mark = observer.mark()
    octoprint.upload("nomarkers.gcode", stripped)
    observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=180)
    time.sleep(0.3)
    events = [LayerEvent.model_validate_json(m.payload) for m in observer.messages[mark:] if m.topic == f"{BASE}/layer"]
    assert len(events) == expected["total_layers"]
    heights = [round(row["z"], 3) for row in expected["layers"]]
    assert [round(e.z, 3) for e in events[1:]] == heights[1:]
    # The first layer comes from the scanned table, or, if the print outran the scan (a loaded
    # machine), from the live detector, which cannot look ahead and takes the purge line at
    # Z0.3 for layer 1; either way it is layer 1 and it is announced once.
    first = events[0]
    assert first.layer == 1 and (round(first.z, 3) == heights[0] or (first.total_layers is None and first.z == 0.3))


CASES = FIXTURES.parent / "gcode_cases"


def test_a_table_cached_at_selection_never_puts_layer_1_on_the_purge(observer, octoprint):
    """issue 10: a file without markers whose purge line is drawn at the first layer's Z.

    Uploaded and selected first: the plugin scans it then (once), so the print starts with its
    table and layer 1 is announced on the part's first extrusion, not on the purge.
    """
    doc = json.loads((CASES / "purge_same_z.json").read_text())
    data = (CASES / "purge_same_z.gcode").read_bytes()  # no heat-up in it: printable as it is
    octoprint.api("POST", "/api/printer/command", {"commands": ["M220 S1000", "M221 S1000"]})
    octoprint.upload("purge_same_z.gcode", data, print_now=False)  # FileAdded, FileSelected
    scanned = f"purge_same_z.gcode: {len(doc['extrusion'])} layers from fallback"  # the worker's log line
    deadline = time.monotonic() + 30
    while scanned not in octoprint.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scanned in octoprint.log(), "scanned when it was added and selected"
    mark = observer.mark()
    octoprint.api("POST", "/api/job", {"command": "start"})
    observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=180)
    events = [LayerEvent.model_validate_json(m.payload) for m in observer.messages[mark:] if m.topic == f"{BASE}/layer"]
    table = LayerTable.model_validate(observer.topic(f"{BASE}/layers", after=mark))
    # stored with a mark before each layer's first line (written from the table scanned at upload)
    marks, unmarked = marks_in(octoprint.stored("purge_same_z.gcode"))
    assert unmarked == data, "the marks are all the upload added"
    assert [(m.layer, m.original_offset) for m in marks] == [(x["layer"], x["offset"]) for x in doc["extrusion"]]
    assert table.marked
    want = [(x["layer"], x["z"], m.file_pos) for x, m in zip(doc["extrusion"], marks, strict=True)]
    assert [(x.layer, x.z, x.file_pos) for x in table.layers] == want
    assert octoprint.log().count(scanned) == 1, "PrintStarted found the table ready: no rescan"
    # every layer from the table, from the first line on: none from the live tracker
    assert [(e.layer, e.z, e.file_pos) for e in events] == want
    assert all(e.total_layers == len(want) for e in events)
    # against OctoPrint's serial log: after the purge was sent, before the part's first extrusion
    commands = command_lines(data)
    sends = sent_times(octoprint.serial_log(), [c for _, c in commands])
    assert len(sends) == len(commands), "every file line was found in the serial log"
    extruding = [i for i, (_, cmd) in enumerate(commands) if is_extrusion(cmd)]
    purge, part = extruding[:2], next(i for i in extruding if commands[i][0] >= doc["extrusion"][0]["offset"])
    assert part > purge[-1] + 1
    assert sends[purge[-1]] - 0.0015 <= events[0].ts <= sends[part] + 0.0015, "layer 1 on the part, not the purge"


def test_the_printed_files_layer_outlines_are_published_for_the_print_watch(observer, octoprint):
    """``printer/outlines`` (retained): every layer's outline, read on its own thread after the table."""
    data = printable("prusa_variable")
    mark = observer.mark()
    octoprint.upload("prusa_variable.gcode", data)
    table = LayerTable.model_validate(observer.topic(f"{BASE}/layers", after=mark, timeout=60))
    got = LayerOutlines.model_validate(observer.topic(f"{BASE}/outlines", after=mark, timeout=60))
    assert got.path == table.path == "prusa_variable.gcode" and got.file_size > len(data)  # stored with its marks
    assert [(o.layer, o.z) for o in got.outlines] == [(row.layer, row.z) for row in table.layers]
    # what the bridge read from OctoPrint's (marked) copy is what the file's own lines give
    want = scan_outlines(io.BytesIO(data), scan_stream(io.BytesIO(data)).table)
    assert got.outlines == want
    assert all(o.hulls for o in got.outlines) and got.outlines[0].rings, "the part every layer, the skirt on the first"
