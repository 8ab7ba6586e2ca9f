"""Layer tables from real slicer files (tests/fixtures/gcode, made by scripts/make-gcode-fixtures.sh).

Each <name>.json was derived by the regeneration script's own naive reader and checked there
against the slicing settings; here the streaming scanner must reproduce it exactly.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from layers_support import FIXTURES, REPO, expected, fixture_names, load_layers

from printmesh_core.models.layers import LayerEvent, LayerTable

layers = load_layers()
NAMES = fixture_names()


def test_fixtures_are_there_and_small():
    assert len(NAMES) >= 18
    for name in NAMES:
        size = (FIXTURES / f"{name}.gcode").stat().st_size
        assert size < 300_000, name
        assert expected(name)["file_size"] == size, f"{name}: regenerate the JSON with the G-code"


@pytest.mark.parametrize("name", NAMES)
def test_marker_table_matches_expected(name):
    exp = expected(name)
    result = layers.scan_file(FIXTURES / exp["file"])
    if exp["style"] is None:
        assert result.markers is None
        assert result.table.source == "fallback"
        return
    table = result.markers
    assert table is not None and table.source == "markers"
    assert table.style == exp["style"]
    assert [layer.model_dump() for layer in table.layers] == exp["layers"]
    assert table.total_layers == exp["total_layers"] == len(exp["layers"])
    assert table.total_height == exp["total_height"]
    assert table.file_size == exp["file_size"]
    assert result.fallback is None  # not built unless asked for: the light pass is what is fast


@pytest.mark.parametrize("name", NAMES)
def test_light_and_full_pass_agree(name):
    """The regex-skipping light pass finds exactly what interpreting every line finds."""
    path = FIXTURES / f"{name}.gcode"
    light, full = layers.scan_file(path), layers.scan_file(path, fallback=True)
    assert (light.markers is None) == (full.markers is None)
    if light.markers is not None and full.markers is not None:
        assert light.markers.layers == full.markers.layers and light.markers.style == full.markers.style
    assert light.counts == full.counts


def test_generator_is_read_from_the_header():
    assert layers.scan_file(FIXTURES / "prusa_vase.gcode").table.generator == "PrusaSlicer 2.5.0"
    assert layers.scan_file(FIXTURES / "cura_vase.gcode").table.generator == "Cura_SteamEngine 4.13.0"
    assert layers.scan_file(FIXTURES / "slic3r_plain_zhop.gcode").table.generator == "Slic3r 1.3.0"


def test_two_styles_in_one_file_are_not_added_up():
    result = layers.scan_file(FIXTURES / "prusa_two_styles.gcode")
    assert result.counts == {"prusa": 15, "layer_number": 15, "before_layer_change": 15, "after_layer_change": 15}
    assert result.table.style == "prusa" and result.table.total_layers == 15


def test_cura_raft_numbers_are_physical_and_keep_curas_label():
    table = layers.scan_file(FIXTURES / "cura_raft.gcode").table
    assert [layer.layer for layer in table.layers] == list(range(1, 20))
    assert [layer.slicer_layer for layer in table.layers][:6] == [-5, -4, -3, -2, 0, 1]  # Cura skips -1
    text = (FIXTURES / "cura_raft.gcode").read_text()
    assert ";LAYER_COUNT:15" in text  # Cura's own count leaves the 4 raft layers out
    first_model = table.layers[4]
    assert (first_model.z, first_model.height) == (1.15, 0.5)  # raft top 0.65 + air gap 0.3 + 0.2
    assert table.layers[5].z == 1.13 and table.layers[5].height is None  # Z went down: no thickness


def test_variable_layer_height_and_vase_heights():
    table = layers.scan_file(FIXTURES / "prusa_variable.gcode").table
    heights = [layer.height for layer in table.layers]
    assert heights == [0.2] * 5 + [0.1] * 10 + [0.2] * 5
    for name in ("prusa_vase", "cura_vase"):
        table = layers.scan_file(FIXTURES / f"{name}.gcode").table
        assert table.total_layers == 20 and {layer.height for layer in table.layers} == {0.2}


def test_crlf_and_missing_final_newline():
    lf = layers.scan_file(FIXTURES / "prusa_zhop_purge.gcode").table
    crlf = layers.scan_file(FIXTURES / "prusa_crlf.gcode").table
    assert [(a.z, a.height) for a in lf.layers] == [(b.z, b.height) for b in crlf.layers]
    # each CRLF line is one byte longer: offsets grow by the number of lines before them
    data = (FIXTURES / "prusa_zhop_purge.gcode").read_bytes()
    assert [b.offset for b in crlf.layers] == [a.offset + data.count(b"\n", 0, a.offset) for a in lf.layers]
    cut = FIXTURES / "prusa_no_trailing_newline.gcode"
    table = layers.scan_file(cut).table
    assert not cut.read_bytes().endswith(b"\n")
    assert table.layers[-1].file_pos == cut.stat().st_size  # the last line, unterminated, is layer 15's first


def test_layer_without_extrusion_keeps_its_marker():
    table = layers.scan_file(FIXTURES / "prusa_layer_without_extrusion.gcode").table
    assert table.total_layers == 15 and table.layers[7].z == 1.6


def scan_bytes(data: bytes, fallback: bool = False):
    return layers.scan_stream(io.BytesIO(data), fallback=fallback)


def test_bom_lone_cr_and_invalid_utf8_count_like_octoprint(tmp_path):
    from layers_support import octoprint_lines

    body = (
        b";LAYER:0\r"  # a lone CR ends a line for OctoPrint
        b"G1 Z0.2 F600 ; caf\xe9 (latin-1, invalid UTF-8)\n"
        b"G1 X10 Y10 E1\n"
        b";LAYER:1\n"
        b"M117 \xff\xfe\n"
        b"G1 Z0.4\n"
        b"G1 X20 Y10 E2"
    )
    for data in (body, b"\xef\xbb\xbf" + body):
        path = tmp_path / "odd.gcode"
        path.write_bytes(data)
        table = layers.scan_file(path).table
        sent = list(octoprint_lines(path))
        assert [layer.file_pos for layer in table.layers] == [sent[0][0], sent[2][0]]
        assert [layer.z for layer in table.layers] == [0.2, 0.4]
        assert table.layers[1].file_pos > table.layers[1].offset + len(b"M117 \xff\xfe\n")  # 2 replacements


def test_kisslicer_objects_at_one_z_are_one_layer():
    data = b"".join(
        b"; BEGIN_LAYER_OBJECT z=%.2f\nG1 Z%.2f\nG1 X1 Y1 E%d\n; END_LAYER_OBJECT\n" % (z, z, i)
        for i, z in enumerate((0.3, 0.3, 0.5, 0.5, 0.7))
    )
    table = scan_bytes(data).table
    assert [(layer.z, layer.height) for layer in table.layers] == [(0.3, 0.3), (0.5, 0.2), (0.7, 0.2)]


def test_marker_at_the_end_without_a_command_is_no_layer():
    table = scan_bytes(b";LAYER:0\nG1 Z0.2\nG1 X1 Y1 E1\n;LAYER:1\n; end\n").table
    assert table.total_layers == 1


def test_simplify3d_and_ideamaker_styles_in_memory():
    s3d = scan_bytes(b"; layer 1, Z = 0.250\nG1 Z0.25\nG1 X1 Y1 E1\n; layer 2, Z = 0.450\nG1 Z.45\nG1 X2 E2\n")
    assert [(x.slicer_layer, x.z, x.height) for x in s3d.table.layers] == [(1, 0.25, 0.25), (2, 0.45, 0.2)]
    idea = scan_bytes(b";LAYER:0\n;Z:0.3\n;HEIGHT:0.3\nG1 X1 Y1 E1\n;LAYER:1\n;Z:0.5\n;HEIGHT:0.2\nG1 X2 E2\n")
    assert [(x.z, x.height) for x in idea.table.layers] == [(0.3, 0.3), (0.5, 0.2)]


def test_tables_and_events_are_payloads():
    table = layers.scan_file(FIXTURES / "cura_raft.gcode").table
    assert LayerTable.model_validate_json(table.to_json()) == table
    event = layers.LayerTracker(table).feed(table.layers[0].file_pos, "G0 X1")
    assert isinstance(event, LayerEvent) and event.ts > 0
    assert set(LayerEvent.model_validate_json(event.to_json()).model_dump()) >= {"layer", "z", "file_pos", "ts"}


def test_layers_package_never_imports_octoprint():
    source = REPO / "bridge_octoprint" / "src" / "octoprint_printmesh" / "layers"
    for path in source.glob("*.py"):
        for line in path.read_text().splitlines():
            assert not re.match(r"\s*(import octoprint\b|from octoprint(\.| ))", line), (path.name, line)
        assert len(path.read_text().splitlines()) < 320, path.name


def test_the_scanner_counts_every_layer_of_a_20_mb_file(tmp_path: Path):
    """Its speed is bench/layer_scan.py's business (a timed test flakes on a loaded machine)."""
    data = (FIXTURES / "cura_zhop_purge.gcode").read_bytes()
    big = tmp_path / "big.gcode"
    big.write_bytes(data * (20_000_000 // len(data)))
    table = layers.scan_file(big).table
    assert table.total_layers == 15 * (20_000_000 // len(data))


def test_light_pass_takes_e_from_skipped_lines():
    """A wipe (XY while E shrinks) right after a Z-less marker: E must come from the skipped lines."""
    data = (
        b"G90\nM82\nG92 E0\n;LAYER:0\nG1 Z0.2\nG1 X1 Y1 E5\nG1 X2 Y1 E10\n"
        b";LAYER:1\nG1 X3 Y1 E9.5\nG1 Z0.4\nG1 X4 Y1 E10.5\n"
    )
    for fallback in (False, True):
        table = scan_bytes(data, fallback=fallback).markers
        assert table is not None and [x.z for x in table.layers] == [0.2, 0.4]
