"""Bridge pure core: G-code parsing, modal tracking and move safety (bounds, lift, return)."""

from __future__ import annotations

import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from octoprint_printmesh.gcode import (
    Modes,
    echo_line,
    fmt,
    parse,
    parse_position,
    token_in,
    track,
)
from octoprint_printmesh.hold.safety import (
    Origin,
    Plan,
    Pos,
    Refusal,
    SafetySettings,
    allowed_region,
    check_gcode,
    physical_region,
    plan_move,
    plan_return,
)
from printmesh_core.models.printer import BuildVolume, CustomBox, PrinterProfile

XYZ = frozenset("xyz")
HEAD = Pos(100, 100, 0.4)


def profile(**volume) -> PrinterProfile:
    base = {"width": 200.0, "depth": 200.0, "height": 200.0}
    return PrinterProfile(name="p", volume=BuildVolume(**{**base, **volume}))


def move(prof: PrinterProfile | None = None, *, head=HEAD, layer_z=0.4, homed=XYZ, s=None, **req):
    target = {"x": None, "y": None, "z": None, "feedrate": None, **req}
    return plan_move(
        **target,
        head=head,
        layer_z=layer_z,
        homed=homed,
        profile=prof or profile(),
        settings=s or SafetySettings(),
        token="t1",
    )


def motion(lines) -> list[dict[str, float]]:
    out = []
    for line in lines:
        cmd = parse(line)
        if cmd is not None and cmd.code in ("G0", "G1"):
            out.append({k.lower(): v for k, v in cmd.params.items() if k in "XYZF" and v is not None})
    return out


# ------------------------------------------------------------------ gcode parsing
def test_parse_normalises_codes_and_strips_noise():
    cmd = parse("N12 g01 x10.5 Y-3 F3000 ; travel *71")
    assert cmd is not None and cmd.code == "G1" and dict(cmd.params) == {"X": 10.5, "Y": -3.0, "F": 3000.0}
    glued = parse("G1X10Y.5Z-0.2")
    assert glued is not None and dict(glued.params) == {"X": 10.0, "Y": 0.5, "Z": -0.2}
    bare = parse("G28 X Y")
    assert bare is not None and bare.has("X") and bare.value("X") is None and not bare.has("Z")
    assert parse("; only a comment") is None and parse("") is None and parse("@pause") is None
    assert parse("M117 Hello X10").params == {}, "M117 text is not parameters"
    assert parse("G29.1").code == "G29.1"


def test_track_positioning_extrusion_and_feedrate():
    m = Modes()
    m = track(m, "G91")
    assert not m.absolute and m.extrusion_relative, "Marlin: G91 also makes E relative"
    m = track(m, "M82")
    assert not m.absolute and not m.extrusion_relative
    m = track(m, "G90")
    assert m.absolute and not m.extrusion_relative
    m = track(m, "M83")
    assert m.extrusion_relative
    assert track(Modes(extrusion_relative=True), "G90", flavour="klipper").extrusion_relative
    m = track(m, "G1 X10 F1500")
    assert m.feedrate == 1500
    assert track(m, "G1 X20").feedrate == 1500, "a move without F keeps the modal feed rate"
    assert track(m, "G1 F0").feedrate == 1500, "F0 is not a feed rate"


def test_track_homing():
    m = track(Modes(), "G28")
    assert m.homed == XYZ
    assert track(Modes(), "G28 X Y").homed == {"x", "y"}
    assert track(m, "M84").homed == frozenset()
    assert track(m, "M18 Z").homed == {"x", "y"}
    assert track(m, "M84 E").homed == XYZ, "extruder only"
    assert track(m, "M84 S600").homed == XYZ, "only the idle timeout"
    assert track(m, "M112").homed == frozenset()
    assert track(m, "M105") is m


def test_position_reply_and_tokens():
    pos = parse_position("ok X:100.0 Y:100.0 Z:5.0 E:19.5 Count X:8000 Y:8000 Z:2000")
    assert pos == {"x": 100.0, "y": 100.0, "z": 5.0, "e": 19.5}
    assert parse_position("X:1.00 Y:2.00 E:0") is None, "Z missing"
    assert parse_position("ok T:210.0 /210.0") is None
    assert echo_line("s.1.2") == "M118 A1 action:printmesh:s.1.2"
    assert token_in("echo:printmesh:s.1.2") == "s.1.2"
    assert token_in("printmesh:abc") == "abc", "firmware that echoes without the echo: prefix"
    assert token_in('echo:Unknown command: "M118 A1 action:printmesh:s.1.2"') is None, "no M118: not a confirmation"
    assert token_in("ok") is None


def test_fmt_never_writes_minus_zero_or_float_noise():
    assert fmt(0.30000000000000004) == "0.3" and fmt(-0.0001) == "0" and fmt(200.0) == "200" and fmt(1.23456) == "1.235"


# ------------------------------------------------------------------ regions
def test_regions_for_origin_custom_box_and_round_beds():
    r = physical_region(BuildVolume(width=220, depth=200, height=250))
    assert (r.x_min, r.x_max, r.y_min, r.y_max, r.z_max, r.circle) == (0, 220, 0, 200, 250, None)
    c = physical_region(BuildVolume(width=200, depth=180, height=100, origin="center"))
    assert (c.x_min, c.x_max, c.y_min, c.y_max) == (-100, 100, -90, 90)
    box = CustomBox(x_min=-5, x_max=230, y_min=-4, y_max=210, z_min=0, z_max=210)
    b = physical_region(BuildVolume(width=220, depth=200, height=200, custom_box=box))
    assert (b.x_min, b.x_max, b.y_min, b.z_max) == (-5, 230, -4, 210)
    d = physical_region(BuildVolume(width=180, depth=180, height=300, origin="center", form_factor="circular"))
    assert d.circle == (0, 0, 90) and d.xy_ok(63, 63) and not d.xy_ok(80, 80)
    a = allowed_region(
        BuildVolume(width=180, depth=180, height=300, origin="center", form_factor="circular"),
        SafetySettings(margin=10, max_z=150),
    )
    assert not isinstance(a, Refusal) and a.circle == (0, 0, 80) and a.z_max == 150
    assert isinstance(allowed_region(BuildVolume(width=10, depth=10, height=10), SafetySettings(margin=6)), Refusal)


# ------------------------------------------------------------------ plan_move
def test_safe_move_lifts_first_travels_then_lowers_and_ends_with_the_token():
    plan = move(x=20, y=30, z=10, feedrate=3000)
    assert isinstance(plan, Plan)
    assert plan.lines == ("G90", "G1 Z10 F200", "G1 X20 Y30 F3000", "M400", "M118 A1 action:printmesh:t1")
    assert plan.end == Pos(20, 30, 10)
    low = move(x=20, y=30, z=3, head=Pos(100, 100, 8), layer_z=0.4)
    assert isinstance(low, Plan)
    assert low.lines[1:4] == ("G1 X20 Y30 F6000", "G1 Z3 F200", "M400"), "no lift needed; lower last"


def test_omitted_z_means_at_least_the_clearance_above_the_layer():
    plan = move(x=50, head=Pos(100, 100, 0.4), layer_z=0.4)
    assert isinstance(plan, Plan) and plan.end == Pos(50, 100, 2.4)
    assert plan.lines[1] == "G1 Z2.4 F200"


def test_feedrates_come_from_settings_then_profile():
    s = SafetySettings(travel_feedrate=9000, z_feedrate=600)
    plan = move(x=20, y=20, z=5, s=s)
    assert isinstance(plan, Plan) and "G1 Z5 F600" in plan.lines and "G1 X20 Y20 F9000" in plan.lines


@pytest.mark.parametrize(
    ("request_", "reason", "axis", "text"),
    [
        ({"x": 196}, "out_of_range", "x", "X 196 is outside the allowed range 5..195"),
        ({"y": -1}, "out_of_range", "y", "Y -1 is outside"),
        ({"z": 250}, "out_of_range", "z", "Z 250 is above the maximum Z 200"),
        ({"z": 1.0}, "below_layer", "z", "at least 2.4"),
        ({"x": 50, "feedrate": 50000}, "too_fast", "feedrate", "feedrate 50000"),
    ],
)
def test_refusals_name_axis_and_value(request_, reason, axis, text):
    result = move(**request_)
    assert isinstance(result, Refusal) and result.reason == reason and result.axis == axis
    assert text in result.message


def test_not_homed_is_refused_naming_the_axis():
    result = move(x=50, homed=frozenset({"x", "y"}))
    assert isinstance(result, Refusal) and result.reason == "not_homed" and "axis Z" in result.message


def test_an_omitted_axis_outside_the_margin_is_refused_and_says_so():
    result = move(y=50, head=Pos(2, 100, 0.4))
    assert isinstance(result, Refusal) and result.axis == "x" and "was not given" in result.message


def test_center_origin_and_round_bed():
    prof = profile(width=200, depth=200, origin="center", form_factor="circular")
    assert isinstance(move(prof, x=-60, y=-60, z=5, head=Pos(0, 0, 0.4)), Plan)
    off = move(prof, x=80, y=80, z=5, head=Pos(0, 0, 0.4))
    assert isinstance(off, Refusal) and off.axis == "xy" and "radius 95" in off.message
    assert isinstance(move(prof, x=150, head=Pos(0, 0, 0.4)), Refusal)


def test_max_z_setting_and_tall_prints():
    s = SafetySettings(max_z=50)
    assert isinstance(move(z=60, s=s), Refusal)
    tall = move(x=10, head=Pos(100, 100, 49), layer_z=49, s=s)
    assert isinstance(tall, Refusal) and tall.axis == "z", "clearance above the print exceeds max Z"


def test_custom_box_allows_moves_beyond_the_bed():
    box = CustomBox(x_min=-20, x_max=220, y_min=0, y_max=200, z_min=0, z_max=200)
    assert isinstance(move(profile(custom_box=box), x=-10, y=50, z=5), Plan)
    assert isinstance(move(profile(), x=-10, y=50, z=5), Refusal)


# ------------------------------------------------------------------ plan_return
def test_return_goes_back_and_restores_feedrate_then_positioning_then_extrusion():
    origin = Origin(Pos(60.0, 70.0, 0.6), Modes(absolute=True, extrusion_relative=True, feedrate=1800))
    plan = plan_return(origin=origin, head=Pos(10, 10, 5), profile=profile(), settings=SafetySettings(), token="r1")
    assert isinstance(plan, Plan)
    assert plan.lines == (
        "G90",
        "G1 X60 Y70 F6000",
        "G1 Z0.6 F200",
        "G1 F1800",
        "G90",
        "M83",
        "M400",
        "M118 A1 action:printmesh:r1",
    )
    rel = Origin(Pos(60, 70, 8), Modes(absolute=False, extrusion_relative=False, feedrate=None))
    up = plan_return(origin=rel, head=Pos(10, 10, 5), profile=profile(), settings=SafetySettings(), token="r2")
    assert isinstance(up, Plan) and up.lines[:5] == ("G90", "G1 Z8 F200", "G1 X60 Y70 F6000", "G91", "M82")
    still = plan_return(origin=rel, head=None, profile=profile(), settings=SafetySettings(), token="r3")
    assert isinstance(still, Plan) and still.end is None and not motion(still.lines)


def test_return_refuses_an_origin_outside_the_volume():
    bad = Origin(Pos(500, 10, 1), Modes())
    result = plan_return(origin=bad, head=Pos(10, 10, 5), profile=profile(), settings=SafetySettings(), token="r")
    assert isinstance(result, Refusal) and result.reason == "bad_origin"


def test_return_may_go_inside_the_margin_where_the_print_was():
    origin = Origin(Pos(1.0, 1.0, 0.2), Modes())
    plan = plan_return(origin=origin, head=Pos(50, 50, 3), profile=profile(), settings=SafetySettings(), token="r")
    assert isinstance(plan, Plan) and "G1 X1 Y1 F6000" in plan.lines


# ------------------------------------------------------------------ gcode command screening
def test_check_gcode():
    assert check_gcode(["M117 hi", "M106 S255"], printing=True) is None
    refusal = check_gcode(["M117 hi", "G1 X10"], printing=True)
    assert refusal is not None and refusal.reason == "forbidden_gcode" and "G1" in refusal.message
    assert check_gcode(["G28", "G1 X10"], printing=False) is None, "idle: like OctoPrint's terminal"
    assert check_gcode(["M118 A1 action:printmesh:s.1.1"], printing=False) is not None, "tokens cannot be forged"
    for code in ("M84", "G92 E0", "M600", "M0"):
        assert check_gcode([code], printing=True) is not None, code


# ------------------------------------------------------------------ property tests
finite = {"allow_nan": False, "allow_infinity": False}


@st.composite
def volumes(draw) -> BuildVolume:
    form = draw(st.sampled_from(["rectangular", "circular"]))
    origin = "center" if form == "circular" else draw(st.sampled_from(["lowerleft", "center"]))
    width = draw(st.floats(20, 600, **finite))
    depth = width if form == "circular" else draw(st.floats(20, 600, **finite))
    height = draw(st.floats(20, 600, **finite))
    box = None
    if draw(st.booleans()):
        x0, y0, z0 = (draw(st.floats(-300, 300, **finite)) for _ in range(3))
        box = CustomBox(
            x_min=x0,
            x_max=x0 + draw(st.floats(20, 600, **finite)),
            y_min=y0,
            y_max=y0 + draw(st.floats(20, 600, **finite)),
            z_min=z0,
            z_max=z0 + draw(st.floats(20, 600, **finite)),
        )
    return BuildVolume(width=width, depth=depth, height=height, origin=origin, form_factor=form, custom_box=box)


coords = st.floats(-800, 800, **finite)
maybe = st.none() | coords


def _inside(region, point: dict[str, float], slack: float = 0.0) -> bool:
    if "x" in point and not region.x_min - slack <= point["x"] <= region.x_max + slack:
        return False
    if "y" in point and not region.y_min - slack <= point["y"] <= region.y_max + slack:
        return False
    if "z" in point and not region.z_min - slack <= point["z"] <= region.z_max + slack:
        return False
    if region.circle is not None and "x" in point:
        assert "y" in point, "XY travel always names both axes on a round bed"
        cx, cy, r = region.circle
        return math.hypot(point["x"] - cx, point["y"] - cy) <= r + slack
    return True


def _near(data, low: float, high: float, spill: float = 0.25):
    """Mostly inside [low, high], sometimes a little outside, sometimes omitted (None)."""
    span = high - low
    return data.draw(st.none() | st.floats(low - spill * span, high + spill * span, **finite))


@settings(max_examples=1500, deadline=None)
@given(
    volume=volumes(),
    margin=st.floats(0, 40, **finite),
    max_z=st.none() | st.floats(1, 700, **finite),
    clearance=st.floats(0, 10, **finite),
    feedrate=st.none() | st.floats(1, 15000, **finite),
    homed=st.integers(0, 9).map(lambda i: XYZ if i < 8 else frozenset("xy")),
    data=st.data(),
)
def test_no_plan_ever_targets_outside_the_allowed_volume(volume, margin, max_z, clearance, feedrate, homed, data):
    s = SafetySettings(margin=margin, max_z=max_z, clearance=clearance)
    prof = PrinterProfile(name="p", volume=volume)
    p = physical_region(volume)
    head = Pos(
        *(
            data.draw(st.floats(lo - 10, hi + 10, **finite))
            for lo, hi in ((p.x_min, p.x_max), (p.y_min, p.y_max), (p.z_min, p.z_max))
        )
    )
    layer_z = data.draw(st.floats(max(0.0, p.z_min), max(0.0, p.z_min) + 0.6 * (p.z_max - p.z_min), **finite))
    x, y, z = (_near(data, lo, hi, 0.1) for lo, hi in ((p.x_min, p.x_max), (p.y_min, p.y_max), (p.z_min, p.z_max)))
    result = plan_move(
        x=x, y=y, z=z, feedrate=feedrate, head=head, layer_z=layer_z, homed=homed, profile=prof, settings=s, token="t"
    )
    event(type(result).__name__ + (f": {result.reason}" if isinstance(result, Refusal) else ""))
    if isinstance(result, Refusal):
        assert result.message
        return
    assert homed >= XYZ
    region = allowed_region(volume, s)
    assert not isinstance(region, Refusal)
    assert result.lines[0] == "G90" and result.lines[-2:] == ("M400", "M118 A1 action:printmesh:t")
    assert not any(line.startswith("G91") for line in result.lines)
    floor = layer_z + clearance - 1e-9
    moves = motion(result.lines)
    for point in moves:  # 1e-9 mm: float noise in the profile's own numbers, not a distance
        assert _inside(region, point, slack=1e-9), (point, region)
        assert point.get("z", math.inf) >= floor, "never below the layer plus clearance"
    end = result.end
    assert end is not None and _inside(region, {"x": end.x, "y": end.y, "z": end.z}, slack=1e-9)
    if z is not None:
        assert result.end.z == float(fmt(z))
    travel = [i for i, point in enumerate(moves) if "x" in point]
    z_targets = [point["z"] for point in moves if "z" in point]
    if travel and z_targets:  # XY travel happens at the highest Z of the plan: lift first, lower last
        height = max([head.z, *(point["z"] for point in moves[: travel[0]] if "z" in point)])
        assert height >= max(z_targets) - 1e-9
        assert all("z" not in point for point in moves[travel[0] :] if "x" in point), "Z and XY never combined"


def test_the_property_test_really_produces_plans():
    """Guard against a vacuous property: a good share of the generated requests must be accepted."""
    outcomes: list[str] = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(volume=volumes(), data=st.data())
    def sample(volume, data):
        p = physical_region(volume)
        head = Pos((p.x_min + p.x_max) / 2, (p.y_min + p.y_max) / 2, p.z_min + 0.3)
        result = plan_move(
            x=_near(data, p.x_min, p.x_max, 0.05),
            y=_near(data, p.y_min, p.y_max, 0.05),
            z=None,
            feedrate=None,
            head=head,
            layer_z=p.z_min + 0.3,
            homed=XYZ,
            profile=PrinterProfile(name="p", volume=volume),
            settings=SafetySettings(margin=2),
            token="t",
        )
        outcomes.append(type(result).__name__)

    sample()
    assert outcomes.count("Plan") > len(outcomes) / 3, outcomes.count("Plan")


@settings(max_examples=300, deadline=None)
@given(volume=volumes(), data=st.data())
def test_the_way_back_stays_inside_the_physical_volume(volume, data):
    phys = physical_region(volume)

    def inside(axis_min, axis_max):
        return st.floats(axis_min, axis_max, **finite)

    ox, oy = data.draw(inside(phys.x_min, phys.x_max)), data.draw(inside(phys.y_min, phys.y_max))
    oz = data.draw(inside(phys.z_min, phys.z_max))
    hx, hy = data.draw(inside(phys.x_min, phys.x_max)), data.draw(inside(phys.y_min, phys.y_max))
    hz = data.draw(inside(phys.z_min, phys.z_max))
    prof = PrinterProfile(name="p", volume=volume)
    result = plan_return(
        origin=Origin(Pos(ox, oy, oz), Modes()),
        head=Pos(hx, hy, hz),
        profile=prof,
        settings=SafetySettings(),
        token="r",
    )
    if isinstance(result, Refusal):  # only a corner of the box that is off the round bed
        assert result.reason == "bad_origin" and phys.circle is not None
        assert math.hypot(ox - phys.circle[0], oy - phys.circle[1]) > phys.circle[2]
        return
    for point in motion(result.lines):
        assert _inside(phys, point, slack=0.0005 + 1e-9), (point, phys)
    assert result.end == Pos(float(fmt(ox)), float(fmt(oy)), float(fmt(oz)))
