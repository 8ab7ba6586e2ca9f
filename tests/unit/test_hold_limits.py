"""Bridge pure core: feed rates bounded on both sides after rounding, and moves that fit their timeouts.

``F0`` must never reach the printer from any path (a requested move, the hold's own lifts and
travels, the way back, the restored feed rate, the gcode command), and a move that cannot
finish within its timeout is refused before anything moves; one that overruns anyway ends
the hold with the way back planned from where the printer will really be.
"""

from __future__ import annotations

import copy
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octoprint_printmesh.gcode import Modes, parse, token_in
from octoprint_printmesh.hold.limits import TIME_SHARE, clamp_feedrate, feedrate_problem, plan_seconds, written
from octoprint_printmesh.hold.machine import step
from octoprint_printmesh.hold.safety import (
    Origin,
    Plan,
    Pos,
    Refusal,
    SafetySettings,
    check_gcode,
    plan_move,
    plan_return,
    restore_lines,
)
from octoprint_printmesh.hold.types import (
    Armed,
    HoldCommand,
    HoldConfig,
    HoldState,
    LayerReached,
    MoveRequested,
    OriginReported,
    PrintStarted,
    PublishEvent,
    ReleaseRequested,
    Reply,
    SendGcode,
    SetJobOnHold,
    Tick,
    TokenSeen,
)
from octoprint_printmesh.settings import DEFAULTS, to_bridge_settings
from printmesh_core.config import ConfigError
from printmesh_core.models.printer import AxisSpeeds, BuildVolume, PrinterProfile

XYZ = frozenset("xyz")
PROFILE = PrinterProfile(name="p", volume=BuildVolume(width=200, depth=200, height=200))
F_WORD = re.compile(r"\bF(-?[0-9.]+)")


def feeds(lines) -> list[float]:
    return [float(m.group(1)) for line in lines for m in F_WORD.finditer(line)]


HEAD = Pos(100, 100, 0.4)


def move(head=HEAD, s=None, prof=PROFILE, **req):
    target = {"x": None, "y": None, "z": None, "feedrate": None, **req}
    return plan_move(**target, head=head, layer_z=0.4, homed=XYZ, profile=prof, settings=s or SafetySettings(),
                     token="t1")  # fmt: skip


# ------------------------------------------------------------------ requested feed rates: refused
@pytest.mark.parametrize("feedrate", [0.001, 1e-300, 0.0001, 0.0004, 59.9994, 1.0])
def test_a_requested_feedrate_below_the_minimum_is_refused_naming_the_field_and_limits(feedrate):
    refusal = move(x=150, feedrate=feedrate)
    assert isinstance(refusal, Refusal), refusal
    assert refusal.reason == "too_slow" and refusal.axis == "feedrate" and refusal.value == feedrate
    assert "feedrate" in refusal.message and "60..12000 mm/min" in refusal.message, refusal.message
    assert "min_feedrate" in refusal.message


def test_limits_apply_to_the_written_value_not_the_requested_one():
    plan = move(x=150, feedrate=59.9996)  # written as F60: exactly the minimum, accepted
    assert isinstance(plan, Plan) and "G1 X150 Y100 F60" in plan.lines, plan
    assert isinstance(move(x=150, feedrate=12000.0004), Plan), "written as F12000"
    too_fast = move(x=150, feedrate=12000.0006)
    assert isinstance(too_fast, Refusal) and too_fast.reason == "too_fast" and "12000" in too_fast.message
    assert feedrate_problem(math.nan, 60, 12000) is not None and feedrate_problem(math.inf, 60, 12000) is not None


def test_the_limits_are_settings():
    s = SafetySettings(min_feedrate=300, max_feedrate=3000)
    slow = move(x=150, feedrate=200, s=s)
    assert isinstance(slow, Refusal) and slow.reason == "too_slow" and "300..3000" in slow.message
    assert isinstance(move(x=150, feedrate=3000, s=s), Plan)
    with pytest.raises(ValueError, match="min"):
        SafetySettings(min_feedrate=0.5)
    with pytest.raises(ValueError, match="min"):
        SafetySettings(min_feedrate=5000, max_feedrate=4000)


def test_bridge_settings_carry_the_limits_and_name_the_key_when_wrong():
    raw = copy.deepcopy(DEFAULTS)
    cfg = to_bridge_settings(raw).hold_config("s").safety
    assert (cfg.min_feedrate, cfg.max_feedrate) == (60, 12000)
    raw["safety"].update(min_feedrate=120, max_feedrate=9000)
    cfg = to_bridge_settings(raw).hold_config("s").safety
    assert (cfg.min_feedrate, cfg.max_feedrate) == (120, 9000)
    for bad in ({"min_feedrate": 0}, {"min_feedrate": 5000, "max_feedrate": 4000}, {"max_feedrate": 1e9}):
        raw = copy.deepcopy(DEFAULTS)
        raw["safety"].update(bad)
        with pytest.raises(ConfigError, match="safety"):
            to_bridge_settings(raw)


# ------------------------------------------------------------------ the hold's own feed rates: clamped
def test_the_holds_own_feedrates_are_clamped_never_f0():
    crawl = PrinterProfile(name="p", volume=PROFILE.volume, speeds=AxisSpeeds(x=0.0001, y=0.0001, z=1e-9))
    plan = move(x=150, z=20, prof=crawl)
    assert isinstance(plan, Plan) and feeds(plan.lines) == [60, 60], plan.lines
    rocket = PrinterProfile(name="p", volume=PROFILE.volume, speeds=AxisSpeeds(x=1e9, y=1e9, z=1e9))
    plan = move(x=150, z=20, prof=rocket)
    assert isinstance(plan, Plan) and feeds(plan.lines) == [12000, 12000], plan.lines
    back = plan_return(origin=Origin(Pos(100, 100, 0.4), Modes(feedrate=0.0001)), head=Pos(150, 100, 20),
                       profile=crawl, settings=SafetySettings(), token="t2")  # fmt: skip
    assert isinstance(back, Plan) and feeds(back.lines) == [60, 60, 60], back.lines
    assert restore_lines(Modes(feedrate=0.0004), "t")[0] == "G1 F60", "the file's F0.0004 is not restored as F0"
    assert restore_lines(Modes(feedrate=1800), "t")[0] == "G1 F1800"
    assert clamp_feedrate(1e-300, 60, 12000) == 60 and written(0.0004) == 0


def test_the_gcode_command_cannot_send_f0_either():
    for line in ("G1 F0", "G0 X10 F0.0001", "G1 F30"):
        refusal = check_gcode([line], printing=False)
        assert isinstance(refusal, Refusal) and refusal.reason == "too_slow", line
    refusal = check_gcode(["G1 F99999"], printing=False)
    assert isinstance(refusal, Refusal) and refusal.reason == "too_fast"
    assert check_gcode(["G1 X10 F3000", "M220 S100", "M203 X0.001"], printing=False) is None, "only G0/G1's F"


@settings(max_examples=300, deadline=None)
@given(
    feedrate=st.none() | st.floats(1e-300, 1e6),
    speed=st.floats(1e-9, 1e9),
    restored=st.none() | st.floats(1e-300, 1e6),
    x=st.floats(10, 190),
    z=st.floats(3, 150),
)
def test_no_plan_ever_writes_a_feedrate_outside_the_limits(feedrate, speed, restored, x, z):
    prof = PrinterProfile(name="p", volume=PROFILE.volume, speeds=AxisSpeeds(x=speed, y=speed, z=speed))
    s = SafetySettings()
    plan = move(x=x, z=z, feedrate=feedrate, prof=prof, s=s)
    lines = list(plan.lines) if isinstance(plan, Plan) else []
    if isinstance(plan, Plan):
        back = plan_return(origin=Origin(Pos(100, 100, 0.4), Modes(feedrate=restored)), head=plan.end,
                           profile=prof, settings=s, token="t2")  # fmt: skip
        assert isinstance(back, Plan)
        lines += back.lines
    else:
        assert plan.reason in ("too_slow", "too_fast"), plan
    assert all(s.min_feedrate <= f <= s.max_feedrate for f in feeds(lines)), lines


# ------------------------------------------------------------------ time
def test_plan_seconds_sums_segments_at_their_written_feedrates():
    lines = ["G90", "G1 Z10.4 F600", "G1 X150 Y100 F3000", "G1 Z5 F600", "M400"]
    # 10 mm at 600 (1 s) + 50 mm at 3000 (1 s) + 5.4 mm at 600 (0.54 s)
    assert plan_seconds((100, 100, 0.4), lines) == pytest.approx(2.54)
    assert plan_seconds((0, 0, 0), ["G1 X3 Y4"]) == math.inf, "no feed rate known: never fits"


CONFIG = HoldConfig(session="t", confirm_timeout=30, max_hold=300, move_timeout=10, return_timeout=20)
ORIGIN = OriginReported(60.0, 70.0, 0.6, Modes(absolute=True, extrusion_relative=True, feedrate=1800))


class Machine:
    def __init__(self, config: HoldConfig = CONFIG) -> None:
        self.config, self.now, self.actions, self.state = config, 1000.0, [], HoldState()
        start = (PrintStarted(), HoldCommand("arm", plan=Armed(frozenset({5}))), LayerReached(5, total=10, z=1.0))
        for event in (*start, ORIGIN, TokenSeen("t.1.1")):
            self.state, _ = step(self.state, event, self.now, config)
        assert self.state.phase == "held"

    def feed(self, event, at=None):
        self.now = self.now if at is None else at
        self.state, out = step(self.state, event, self.now, self.config)
        self.actions.extend(out)
        return out

    def sent(self) -> list[str]:
        return [line for a in self.actions if isinstance(a, SendGcode) for line in a.lines]


def test_a_legal_but_slow_move_over_a_long_way_is_refused_before_anything_moves():
    m = Machine()
    # 60 mm/min over ~150 mm: 150 s, far beyond 80 % of the 10 s move timeout
    out = m.feed(MoveRequested("slow", 190, 190, 10, 60, XYZ, PROFILE))
    (reply,) = out
    assert isinstance(reply, Reply) and not reply.ok and reply.code == "too_long", reply
    assert "timeout" in (reply.message or "") and f"{TIME_SHARE:.0%}" in (reply.message or "")
    assert m.sent() == [] and m.state.phase == "held", "nothing was sent, the hold goes on"
    ok = m.feed(MoveRequested("fast", 190, 190, 10, 6000, XYZ, PROFILE))
    assert [type(a) for a in ok] == [SendGcode], ok


def test_a_move_whose_way_back_cannot_fit_the_return_timeout_is_refused():
    quick_move = HoldConfig(session="t", move_timeout=600, return_timeout=2)
    m = Machine(quick_move)
    (reply,) = m.feed(MoveRequested("high", 60, 70, 150, None, XYZ, PROFILE))  # Z down 150 mm at 200 mm/min: 45 s
    assert reply.code == "too_long" and "way back" in (reply.message or ""), reply


def test_a_move_that_overruns_its_timeout_aborts_the_hold_and_returns_from_where_it_ends():
    m = Machine()
    m.feed(MoveRequested("m1", 150, 170, None, 6000, XYZ, PROFILE))  # from the origin, Z kept at the floor
    end = m.state.pending.end
    out = m.feed(Tick(), m.now + CONFIG.move_timeout)
    assert Reply("m1", False, code="timeout", message="the printer did not confirm the move within 10 s") in out
    back = next(a for a in out if isinstance(a, SendGcode)).lines
    # the printer runs its queue in order: the way back starts where the timed-out move ends
    assert "G1 X60 Y70 F6000" in back and back[-1].startswith("M118"), back
    assert m.state.phase == "returning" and m.state.head == end
    out = m.feed(Tick(), m.now + CONFIG.return_timeout)
    released = next(a for a in out if isinstance(a, PublishEvent) and a.event == "released")
    assert SetJobOnHold(False) in out
    assert released.payload["reason"] == "move_timeout" and released.payload["returned"] is False
    assert "return" in released.payload["error"]


def test_a_release_while_a_move_runs_returns_from_the_moves_end():
    m = Machine()
    m.feed(MoveRequested("m1", 150, 170, None, 6000, XYZ, PROFILE))
    out = m.feed(ReleaseRequested("r1"))
    back = next(a for a in out if isinstance(a, SendGcode)).lines
    assert "G1 X60 Y70 F6000" in back, back
    m.feed(TokenSeen(token_in(back[-1]) or ""))
    assert m.state.phase == "idle"
    assert all(parse(line) is not None for line in back)
