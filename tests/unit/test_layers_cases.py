"""Two layer-detection cases (issue 10), on files from scripts/make-layer-case-fixtures.py.

* ``purge_same_z``: no markers; the purge line is drawn at the first layer's Z, then G92 E0,
  a travel, and the part at the same Z. Layer 1 is the part's first extrusion.
* ``sequential``: two objects printed one at a time; the second starts again at Z0.2.
  Layers are numbered on across objects, as the marker table does.

The expected rows were written by the generator while it wrote each layer, not by the code
under test.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from layers_support import REPO, load_layers, naive_extrusions, octoprint_lines, stripped_copy

from octoprint_printmesh.layer_follower import LayerFollower

layers = load_layers()
CASES = REPO / "tests" / "fixtures" / "gcode_cases"


def expected(name: str) -> dict:
    return json.loads((CASES / f"{name}.json").read_text())


def rows(table) -> list[tuple[int, float, float | None, int]]:
    return [(x.layer, x.z, x.height, x.file_pos) for x in table.layers]


def want(doc: dict, key: str) -> list[tuple[int, float, float | None, int]]:
    return [(x["layer"], x["z"], x["height"], x["file_pos"]) for x in doc[key]]


def live(path: Path) -> list:
    tracker = layers.FallbackTracker()
    return [event for pos, line in octoprint_lines(path) if (event := tracker.feed(pos, line)) is not None]


def test_fixtures_match_their_json():
    for name in ("purge_same_z", "sequential"):
        doc = expected(name)
        assert (CASES / doc["file"]).stat().st_size == doc["file_size"], "regenerate with the script"


# ------------------------------------------------------------ purge at the first layer's Z
def test_purge_at_first_layer_z_is_not_layer_1_in_the_table():
    doc = expected("purge_same_z")
    path = CASES / doc["file"]
    result = layers.scan_file(path)
    assert result.markers is None and result.table.source == "fallback"
    assert rows(result.table) == want(doc, "extrusion")
    purge = naive_extrusions(path)[:2]  # the two purge moves come first
    assert result.table.layers[0].file_pos > purge[-1], "layer 1 starts after the purge"


def test_purge_live_agrees_from_layer_2_and_never_fires_late():
    """Live cannot look ahead: it fires layer 1 on the purge (before the part, never after)."""
    doc = expected("purge_same_z")
    path = CASES / doc["file"]
    table = layers.scan_file(path).table
    fired = live(path)
    assert [(e.layer, e.z, e.file_pos) for e in fired[1:]] == [(x.layer, x.z, x.file_pos) for x in table.layers[1:]]
    assert fired[0].layer == 1 and fired[0].z == table.layers[0].z and fired[0].file_pos < table.layers[0].file_pos


def test_purge_rule_needs_the_e_reset_and_a_short_run():
    """A first layer that is long, or not followed by G92 E, is a layer: nothing is dropped."""
    scan = layers.scan_stream
    lines = ["G90", "M82", "G92 E0", "G1 Z0.2", "G1 X10 Y0 E1", "G1 X20 Y0 E2", "G1 X30 Y30", "G1 X40 Y30 E3"]
    data = ("\n".join(lines) + "\n").encode()

    table = scan(io.BytesIO(data), fallback=True).fallback
    assert [(x.layer, x.z) for x in table.layers] == [(1, 0.2)] and table.layers[0].offset == data.index(b"G1 X10")
    with_reset = data.replace(b"G1 X30 Y30\n", b"G92 E0\nG1 X30 Y30\n").replace(b"E3", b"E1")
    table = scan(io.BytesIO(with_reset), fallback=True).fallback
    assert table.layers[0].offset == with_reset.index(b"G1 X40"), "two moves, G92 E0, same Z: a purge"
    long_first = with_reset.replace(
        b"G1 X20 Y0 E2\n", b"G1 X20 Y0 E2\n" + b"".join(b"G1 X2%d Y0 E2.%d\n" % (i, i) for i in range(1, 5))
    )
    table = scan(io.BytesIO(long_first), fallback=True).fallback
    assert table.layers[0].offset == long_first.index(b"G1 X10"), "six moves: a layer, not a purge"


# ------------------------------------------------------------------ sequential printing
def test_sequential_marker_table_numbers_on_across_objects():
    doc = expected("sequential")
    table = layers.scan_file(CASES / doc["file"]).markers
    assert table is not None and table.style == "prusa"
    assert [(x.layer, x.z, x.height, x.file_pos) for x in table.layers] == want(doc, "markers")


def test_sequential_fallback_table_numbers_on_like_the_markers(tmp_path):
    doc = expected("sequential")
    stripped = stripped_copy(CASES / doc["file"], tmp_path / "seq.gcode")
    table = layers.scan_file(stripped).table
    assert table.source == "fallback"
    marker_layers = [(x["layer"], x["z"], x["height"]) for x in doc["markers"]]
    assert [(x.layer, x.z, x.height) for x in table.layers] == marker_layers
    full = layers.scan_file(CASES / doc["file"], fallback=True).fallback
    assert rows(full) == want(doc, "extrusion"), "each layer starts at its first extrusion"
    assert table.total_layers == 12 and table.total_height == 1.2


def test_sequential_live_announces_the_second_objects_first_layer():
    doc = expected("sequential")
    path = CASES / doc["file"]
    fired = live(path)
    assert [(e.layer, e.z, e.height, e.file_pos) for e in fired] == want(doc, "extrusion")
    follower_events: list = []
    follower = LayerFollower(follower_events.append)
    follower.begin("sequential.gcode", None)
    for pos, line in octoprint_lines(path):
        follower.on_line(frozenset({"source:file", f"filepos:{pos}"}), line)
    assert [e.layer for e in follower_events] == list(range(1, 13))


@pytest.mark.parametrize("drop", [0.02, 0.2])
def test_small_drops_rebase_instead_of_starting_an_object(drop):
    """Cura's raft overlap (0.02 mm) and a drop of one layer re-base; only a larger drop is a new object."""
    detector = layers.FallbackDetector()
    assert [detector.observe(1, z) for z in (0.2, 0.4, 0.6)] == [1, 1, 1]
    assert detector.observe(1, round(0.6 - drop, 3)) == 2 and detector.layer == 3
    detector = layers.FallbackDetector()
    assert [detector.observe(1, z) for z in (0.2, 0.4, 0.6)] == [1, 1, 1]
    assert detector.observe(1, 0.2) == 1 and detector.layer == 4 and detector.height == 0.2  # the next object
