"""Layer outlines from G-code (bridge ``layers/outline.py``): what the print watch projects into each capture."""

from __future__ import annotations

import io

import pytest
from virtual_camera_support import SAMPLE

from octoprint_printmesh.layers.outline import OutlineBuilder, hull, inside, scan_outlines, simplify
from octoprint_printmesh.layers.scanner import scan_file, scan_stream
from printmesh_core import contract
from printmesh_core.models.layers import LayerOutlines


def outlines_of(text: str):
    data = text.encode()
    table = scan_stream(io.BytesIO(data)).table
    return scan_outlines(io.BytesIO(data), table)


def square(x0: float, y0: float, x1: float, y1: float, e: float, step: float = 1.0) -> tuple[list[str], float]:
    """A closed extruded square (absolute E), starting with a travel to its first corner."""
    lines = [f"G0 X{x0} Y{y0}"]
    for x, y in ((x1, y0), (x1, y1), (x0, y1), (x0, y0)):
        e += step
        lines.append(f"G1 X{x} Y{y} E{e:.3f}")
    return lines, e


def layer(z: float, body: list[str]) -> list[str]:
    return [";LAYER_CHANGE", f";Z:{z}", ";HEIGHT:0.2", f"G1 Z{z}", *body]


def test_the_sample_box_is_one_square_per_layer_with_its_skirt_a_ring_on_layer_one():
    table = scan_file(SAMPLE).table
    with open(SAMPLE, "rb") as f:
        out = scan_outlines(f, table)
    assert [o.layer for o in out] == [row.layer for row in table.layers]
    assert [o.z for o in out] == [row.z for row in table.layers]
    first = out[0]
    assert len(first.rings) == 1 and len(first.hulls) == 1  # the skirt 6 mm out, and the part
    xs = [p[0] for p in first.rings[0]]
    assert min(xs) < 85 and max(xs) > 115
    for o in out[1:]:
        assert o.rings == [] and len(o.hulls) == 1
        (h,) = o.hulls
        assert len(h) == 4
        assert min(p[0] for p in h) == pytest.approx(90.2, abs=0.1) and max(p[0] for p in h) == pytest.approx(
            109.8, abs=0.1
        )
    # small enough to travel retained beside the layer table
    payload = LayerOutlines(path="box.gcode", file_size=1, outlines=out)
    assert len(payload.to_json()) < 200 * len(out) + 1000
    assert contract.PRINTER_OUTLINES.read(payload.to_json()).outlines == out


def test_a_loop_with_a_gap_to_what_it_encloses_is_a_ring_and_a_wall_touching_its_infill_is_not():
    skirt, e = square(0, 0, 40, 40, 0.0)
    wall, e = square(10, 10, 30, 30, e)
    inner, e = square(10.45, 10.45, 29.55, 29.55, e)
    infill = ["G0 X11 Y11", f"G1 X29 Y29 E{e + 1:.3f}"]
    (out,) = outlines_of("\n".join(["G90", "M82", "G92 E0", *layer(0.2, skirt + wall + inner + infill)]))
    assert len(out.rings) == 1 and {p for p in out.rings[0]} == {(0, 0), (40, 0), (40, 40), (0, 40)}
    assert out.hulls == [[(10, 10), (30, 10), (30, 30), (10, 30)]]  # inner wall and infill inside it: dropped


def test_travel_ends_a_stroke_and_separate_islands_stay_separate():
    a, e = square(0, 0, 10, 10, 0.0)
    b, e = square(50, 0, 60, 10, e)
    (out,) = outlines_of("\n".join(["G90", "M82", "G92 E0", *layer(0.2, a + b)]))
    assert sorted(out.hulls) == [[(0, 0), (10, 0), (10, 10), (0, 10)], [(50, 0), (60, 0), (60, 10), (50, 10)]]


def test_relative_extrusion_retracts_and_wipes_and_a_start_purge():
    purge = ["M83", "G0 X5 Y-5", "G1 X60 Y-5 E8"]  # the start G-code's purge line: on the bed, layer 1's
    body = ["G1 E-0.8", "G0 X0 Y0", "G1 E0.8", "G1 X10 Y0 E0.5", "G1 X10 Y10 E0.5",
            "G1 X5 Y40 E-0.5",  # a wipe: the head moves, E goes back (no material)
            "G0 X100 Y100", "G1 X101 Y100 E0"]  # fmt: skip
    first, second = outlines_of("\n".join(["G90", "G92 E0", *purge, *layer(0.2, body), *layer(0.4, body)]))
    assert sorted(first.hulls) == [[(0, 0), (10, 0), (10, 10)], [(5, -5), (60, -5)]]
    assert second.hulls == [[(0, 0), (10, 0), (10, 10)]]


def test_geometry_helpers():
    assert hull([(0, 0), (1, 1), (2, 0), (1, 0.2), (1, -1)]) == [(0, 0), (1, -1), (2, 0), (1, 1)]
    assert inside([(0, 0), (2, 0), (2, 2), (0, 2)], (1, 1)) and not inside([(0, 0), (2, 0), (2, 2)], (2, 3))
    assert simplify([(0, 0), (1, 0.01), (2, 0), (2, 5)]) == [(0, 0), (2, 0), (2, 5)]
    builder = OutlineBuilder()
    builder.line("G1 X1 Y1 E1 ; comments are fine")
    assert builder.finish() == []  # no layer started: nothing to report
