"""Following prints: the table tracker on OctoPrint's view of each fixture, and the fallback.

OctoPrint's view is simulated from the file (tests/layers_support.octoprint_lines): the
same comment-stripped lines and filepos tags the plugin's gcode hook gets.
"""

from __future__ import annotations

import time
from bisect import bisect_left

import pytest
from layers_support import FIXTURES, expected, fixture_names, load_layers, naive_extrusions, octoprint_lines

layers = load_layers()
NAMES = fixture_names()
MARKED = [n for n in NAMES if expected(n)["style"] is not None]


def replay(tracker, path):
    return [(event, line) for pos, line in octoprint_lines(path) if (event := tracker.feed(pos, line)) is not None]


@pytest.mark.parametrize("name", MARKED)
def test_event_fires_on_each_layers_first_line_before_its_extrusion(name):
    exp = expected(name)
    path = FIXTURES / exp["file"]
    fired = replay(layers.LayerTracker(layers.scan_file(path).table), path)
    assert [(e.layer, e.file_pos) for e, _ in fired] == [(x["layer"], x["file_pos"]) for x in exp["layers"]]
    extrusions = naive_extrusions(path)
    for i, (event, _line) in enumerate(fired):
        # no extrusion between this event and the marker: the previous layer's last extrusion came before it
        before = bisect_left(extrusions, event.file_pos)
        nxt = fired[i + 1][0].file_pos if i + 1 < len(fired) else float("inf")
        layer_extrusions = [p for p in extrusions[before:] if p < nxt]
        if layer_extrusions:  # (a layer may extrude nothing)
            assert event.file_pos <= layer_extrusions[0]
        assert event.total_layers == exp["total_layers"] and event.source == "markers"


def test_event_payload_for_cura_raft():
    path = FIXTURES / "cura_raft.gcode"
    fired = replay(layers.LayerTracker(layers.scan_file(path).table), path)
    first, fifth = fired[0][0], fired[4][0]
    assert (first.layer, first.slicer_layer, first.z) == (1, -5, 0.3)
    assert (fifth.layer, fifth.slicer_layer, fifth.z, fifth.height) == (5, 0, 1.15, 0.5)
    assert fired[0][1] == "M107"  # Cura's first line after ;LAYER:-5


def test_restart_and_jumps():
    table = layers.scan_file(FIXTURES / "prusa_zhop_purge.gcode").table
    tracker = layers.LayerTracker(table)
    pos = [layer.file_pos for layer in table.layers]
    assert tracker.feed(pos[0] - 5, "G1 X1") is None and tracker.layer == 0
    assert tracker.feed(pos[0], "G1 Z.2").layer == 1
    assert tracker.feed(pos[0], "G1 Z.2") is None  # the same position again fires nothing
    assert tracker.feed(pos[5] + 3, "G1 X1").layer == 6  # jumped over layers 2..5: "where are we now"
    assert tracker.feed(pos[6] - 1, "G1 X1") is None
    assert tracker.feed(pos[2] + 1, "G1 X1").layer == 3  # went back: the print restarted mid-file
    assert tracker.feed(pos[3], "G1 X1").layer == 4
    tracker.reset()
    assert tracker.layer == 0 and tracker.feed(pos[-1], "G1").layer == 15
    assert tracker.feed(10**9, "G1") is None
    empty = layers.LayerTracker(table.model_copy(update={"layers": [], "total_layers": 0}))
    assert empty.feed(10**6, "G1 X1") is None


def test_tracker_cost_per_line():
    """p50/p99 of one feed() over a whole print (the comm thread pays this per line)."""
    path = FIXTURES / "cura_zhop_purge.gcode"
    tracker = layers.LayerTracker(layers.scan_file(path).table)
    lines = list(octoprint_lines(path))
    samples = []
    clock = time.perf_counter_ns
    for _ in range(20):
        tracker.reset()
        for pos, line in lines:
            t = clock()
            tracker.feed(pos, line)
            samples.append(clock() - t)
    samples.sort()
    p50, p99 = samples[len(samples) // 2] / 1000, samples[len(samples) * 99 // 100] / 1000
    print(f"LayerTracker.feed: p50 {p50:.2f} us, p99 {p99:.2f} us over {len(samples)} lines")
    assert p50 < 20


# ---- the fallback: extrusion at a new maximum Z ----


@pytest.mark.parametrize("name", NAMES)
def test_fallback_on_stripped_files_matches_the_markers(name, tmp_path):
    from layers_support import stripped_copy

    exp = expected(name)
    stripped = stripped_copy(FIXTURES / exp["file"], tmp_path / "stripped.gcode")
    assert ";" not in stripped.read_text()
    result = layers.scan_file(stripped)
    assert result.markers is None
    table = result.table
    assert table.source == "fallback"
    want = [(x["z"], x["height"]) for x in exp["layers"]]
    got = [(x.z, x.height) for x in table.layers]
    rule = exp["fallback"]
    if rule.get("same_as_markers"):
        assert got == want
    elif rule.get("z") == "revolution start":  # spiral vase: same count and heights, z one revolution lower
        assert [h for _, h in got] == [h for _, h in want]
        assert all(wz - wh - 0.01 < gz < wz + 1e-9 for (gz, _), (wz, wh) in zip(got, want, strict=True))
    else:
        assert table.total_layers == rule["total_layers"], rule["note"]
    # the fallback in the full pass over the original file sees the same (comments do not matter to it)
    full = layers.scan_file(FIXTURES / exp["file"], fallback=True).fallback
    assert [(x.z, x.height) for x in full.layers] == got


@pytest.mark.parametrize("name", NAMES)
def test_live_fallback_fires_on_the_first_extrusion_of_each_layer(name):
    path = FIXTURES / f"{name}.gcode"
    table = layers.scan_file(path, fallback=True).fallback
    fired = replay(layers.FallbackTracker(), path)
    extrusions = set(naive_extrusions(path))
    assert all(event.file_pos in extrusions for event, _ in fired)  # fired on an extruding line, before it is sent
    live = [(e.z, e.file_pos) for e, _ in fired]
    rows = [(x.z, x.file_pos) for x in table.layers]
    if name == "prusa_relative_fwretract":
        # its purge line (Z0.2) is below the 0.3 mm first layer: live, it fires as a layer of its own;
        # the table, seeing the whole file, drops it (at most 4 extruding moves before a real layer)
        assert live[1:] == rows and live[0][0] == 0.2
    elif name in (
        "prusa_zhop_purge",
        "prusa_crlf",
        "prusa_layer_without_extrusion",
        "prusa_no_trailing_newline",
        "cura_zhop_purge",
        "cura_fwretract_relative",
        "cura_vase",
    ):
        # purge line above the first layer: live layer 1 fires on it (early, still before any layer extrusion)
        assert live[1:] == rows[1:] and live[0][0] > rows[0][0] and live[0][1] < rows[0][1]
    elif name == "cura_raft":
        # Cura's purge line is at Z0.3 and so is the raft's first layer: the table, seeing the whole
        # file, starts layer 1 at the raft (the purge ended with G92 E0); live, which cannot look
        # ahead, fires on the purge, at the same Z (issue 10; tests/test_layers_cases.py)
        assert live[1:] == rows[1:] and live[0][0] == rows[0][0] and live[0][1] < rows[0][1]
    else:
        assert live == rows


def test_fallback_ignores_zhop_lifts_retracts_and_wipes():
    tracker = layers.FallbackTracker()
    script = [
        "G28",
        "G90",
        "M82",
        "G1 Z5 F5000",
        "G92 E0",
        "G1 E5 F100",  # lift, prime without XY
        "G1 Z0.2",
        "G1 X10 Y10 E6",  # layer 1
        "G1 E4",
        "G1 Z0.6",
        "G1 X50 Y50",
        "G1 Z0.2",
        "G1 E6",  # retract, z-hop travel, back down
        "G1 X60 Y50 E7",  # still layer 1
        "G1 X61 Y50 E6.5",  # a wipe: XY while E decreases
        "G10",
        "G1 Z0.4",
        "G1 X70",
        "G11",  # firmware retraction around the layer change
        "G1 X80 Y50 E8",  # layer 2
        "G91",
        "G1 Z1",
        "G1 X5",
        "G1 Z-1",
        "G90",  # relative hop
        "G1 X90 E9",  # still layer 2
        "M83",
        "G1 Z0.6",
        "G1 X91 E0.5",  # relative E: layer 3
        "G92 Z10",
        "G1 X92 E0.5",  # Z re-based: extrusion "at 10" is a new maximum
    ]
    fired = [e for i, line in enumerate(script) if (e := tracker.feed(i, line)) is not None]
    assert [(e.layer, e.z, e.file_pos) for e in fired] == [(1, 0.2, 7), (2, 0.4, 19), (3, 0.6, 28), (4, 10.0, 30)]


def test_motion_parses_what_firmware_accepts():
    m = layers.Motion()
    assert m.feed("G1X10Y10Z0.3E1") == 3  # no spaces: extrudes and moves Z
    assert m.z == 0.3 and m.e == 1
    assert m.feed("g1 x20 e2") == 1  # lower case
    assert m.feed("N12 G1 X30 E3*71") == 1  # line number and checksum
    assert m.feed("G2 X40 Y10 I5 J0 E4") == 1  # arcs extrude
    assert m.feed("G1 X40 Y10 E5") == 0  # E grows but XY did not change: a prime, not extrusion
    assert m.feed("G10 P0 L2 X0") == 0 and not m.fw_retracted  # RepRapFirmware tool offsets, not a retract
    assert m.feed("G10") == 0 and m.fw_retracted
    assert m.feed("G92") == 0 and (m.x, m.y, m.z, m.e) == (0, 0, 0, 0)
    assert m.feed("") == 0 and m.feed("M117 HELLO E3") == 0


def test_min_layer_height_and_vase_step():
    detector = layers.FallbackDetector(min_layer_height=0.05)
    assert detector.observe(1, 0.2) == 1
    assert detector.observe(1, 0.22) == 0  # below the minimum step
    assert detector.observe(1, 0.4) == 1
    # spiral: Z climbs while extruding (flags 3); a layer per step of the last flat layer (0.2)
    climbs = [round(0.4 + 0.01 * i, 3) for i in range(1, 61)]
    new = [z for z in climbs if detector.observe(3, z) == 1]
    assert new == [0.41, 0.61, 0.81]
