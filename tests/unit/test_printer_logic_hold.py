"""Bridge pure core: the hold state machine, every transition and every timeout.

The invariant above all: every hold ends in exactly one ``SetJobOnHold(False)``, on every
path, and no hold outlives its watchdog.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from octoprint_printmesh.gcode import Modes, token_in
from octoprint_printmesh.hold.machine import job_command_refusal, status_payload, step
from octoprint_printmesh.hold.outage import HOLDER_GRACE
from octoprint_printmesh.hold.types import (
    Action,
    Armed,
    BrokerBack,
    BrokerLost,
    GcodeRequested,
    HoldCommand,
    HoldConfig,
    HolderOffline,
    HolderOnline,
    HoldInput,
    HoldState,
    LayerReached,
    MoveRequested,
    OriginReported,
    PrintStarted,
    PrintStopped,
    PublishEvent,
    ReleaseRequested,
    Reply,
    SendGcode,
    SetJobOnHold,
    Tick,
    TokenSeen,
)
from octoprint_printmesh.hold.views import held_payload
from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import BuildVolume, HoldRequest, Point, PrinterProfile

CONFIG = HoldConfig(session="t", confirm_timeout=30, max_hold=300, move_timeout=60, return_timeout=60)
PROFILE = PrinterProfile(name="p", volume=BuildVolume(width=200, depth=200, height=200))
XYZ = frozenset("xyz")
ORIGIN = OriginReported(60.0, 70.0, 0.6, Modes(absolute=True, extrusion_relative=True, feedrate=1800))


@dataclass
class Machine:
    """Drives ``step`` and keeps every action, like the plugin shell would."""

    state: HoldState = field(default_factory=HoldState)
    now: float = 1000.0
    actions: list[Action] = field(default_factory=list)
    config: HoldConfig = CONFIG

    def feed(self, event: HoldInput, at: float | None = None) -> list[Action]:
        self.now = self.now if at is None else at
        self.state, out = step(self.state, event, self.now, self.config)
        self.actions.extend(out)
        return out

    def after(self, seconds: float, event: HoldInput | None = None) -> list[Action]:
        return self.feed(event or Tick(), self.now + seconds)

    @property
    def sent(self) -> list[str]:
        return [line for a in self.actions if isinstance(a, SendGcode) for line in a.lines]

    @property
    def last_token(self) -> str:
        tokens = [t for line in self.sent if (t := token_in(line))]
        return tokens[-1]

    def echo(self) -> list[Action]:
        return self.feed(TokenSeen(self.last_token))

    def holds(self) -> list[bool]:
        return [a.on for a in self.actions if isinstance(a, SetJobOnHold)]

    def replies(self, cmd_id: str) -> list[Reply]:
        return [a for a in self.actions if isinstance(a, Reply) and a.cmd_id == cmd_id]

    def events(self) -> list[str]:
        return [a.event for a in self.actions if isinstance(a, PublishEvent)]


def move(cmd_id="m1", x=20.0, y=30.0, z=10.0, feedrate=None, homed=XYZ) -> MoveRequested:
    return MoveRequested(cmd_id, x, y, z, feedrate, homed, PROFILE)


def held(**plan) -> Machine:
    """A machine holding at layer 5 with a known origin."""
    m = Machine()
    m.feed(PrintStarted())
    m.feed(HoldCommand("arm", plan=Armed(**plan) if plan else Armed(frozenset({5})), holder="octopi/coordinator"))
    m.feed(LayerReached(5, total=10, z=1.0))
    m.feed(ORIGIN)
    m.echo()
    assert m.state.phase == "held"
    return m


# ------------------------------------------------------------------ the happy path
def test_arm_hold_move_release_happy_path():
    m = Machine()
    m.feed(PrintStarted())
    out = m.feed(HoldCommand.from_request(HoldRequest(id="arm", layer=5, holder="octopi/coordinator")))
    assert out[-1] == Reply("arm", True, {"armed": {"layers": [5], "every": None, "first": False, "last": False}})
    assert m.events() == ["hold_armed"] and m.state.holder == "octopi/coordinator"

    assert m.feed(LayerReached(4, 10, 0.8)) == []
    out = m.feed(LayerReached(5, 10, 1.0))
    assert out[0] == SetJobOnHold(True)
    assert out[1] == SendGcode(("M400", "M114", "M118 A1 action:printmesh:t.1.1"))
    assert m.state.phase == "draining" and m.events()[-1] == "holding"

    m.feed(ORIGIN)
    out = m.feed(TokenSeen("t.1.1"))
    assert m.state.phase == "held" and out[0].event == "held"
    assert out[0].payload["origin"] == {"x": 60.0, "y": 70.0, "z": 0.6}

    out = m.feed(move())
    assert out == [SendGcode(("G90", "G1 Z10 F200", "G1 X20 Y30 F6000", "M400", "M118 A1 action:printmesh:t.1.2"))]
    assert m.state.phase == "busy"
    out = m.echo()
    assert out[0] == Reply("m1", True, {"hold_id": 1, "layer": 5, "position": {"x": 20.0, "y": 30.0, "z": 10.0}})
    assert m.state.phase == "held" and m.events()[-1] == "moved"

    out = m.feed(ReleaseRequested("r1"))
    assert out[0] == SendGcode(
        ("G90", "G1 X60 Y70 F6000", "G1 Z0.6 F200", "G1 F1800", "G90", "M83", "M400", "M118 A1 action:printmesh:t.1.3")
    )
    assert m.state.phase == "returning" and m.holds() == [True]
    out = m.echo()
    assert out[0] == SetJobOnHold(False) and m.holds() == [True, False]
    released = out[1]
    assert (
        isinstance(released, PublishEvent)
        and released.payload["returned"]
        and released.payload["reason"] == "requested"
    )
    assert m.replies("r1")[0].ok and m.state.phase == "idle" and m.state.armed is not None


def test_a_hold_without_moves_releases_at_once():
    m = held()
    out = m.feed(ReleaseRequested("r"))
    assert out[0] == SetJobOnHold(False) and m.replies("r")[0].ok and m.state.phase == "idle"
    assert not any(isinstance(a, SendGcode) for a in out)


def test_hold_now_answers_once_held():
    m = Machine()
    m.feed(HoldCommand("h", now=True))
    assert m.replies("h")[0].code == "not_printing" and m.holds() == []
    m.feed(PrintStarted())
    m.feed(HoldCommand("h2", now=True, holder="octopi/coordinator"))
    assert m.state.phase == "draining" and m.replies("h2") == []
    m.feed(ORIGIN)
    m.echo()
    assert m.replies("h2")[0].ok and m.replies("h2")[0].data["origin"]["x"] == 60.0
    m.feed(HoldCommand("h3", now=True))
    assert m.replies("h3")[0].data["already"] is True and m.holds() == [True]


# ------------------------------------------------------------------ plans
def layers_held(plan: Armed, events: list[LayerReached]) -> list[int]:
    m = Machine()
    m.feed(PrintStarted())
    m.feed(HoldCommand("arm", plan=plan))
    got = []
    for ev in events:
        if m.feed(ev) and m.state.phase == "draining":
            got.append(ev.layer)
            m.feed(ReleaseRequested())
    return got


def test_plan_rules():
    seq = [LayerReached(n, 25) for n in range(1, 26)]
    assert layers_held(Armed(every=10), seq) == [10, 20]
    assert layers_held(Armed(first=True, last=True), seq) == [1, 25]
    assert layers_held(Armed(frozenset({3, 7})), seq) == [3, 7]
    assert layers_held(Armed(first=True), [LayerReached(4), LayerReached(5)]) == [4], "first = first seen"
    assert layers_held(Armed(last=True), [LayerReached(n) for n in range(1, 5)]) == [], "total unknown"


def test_repeated_and_out_of_order_layers_never_hold_twice():
    assert layers_held(Armed(frozenset({5})), [LayerReached(5), LayerReached(5), LayerReached(4), LayerReached(5)]) == [
        5
    ]


def test_layers_during_a_hold_are_not_holds():
    m = held(every=1)
    m.feed(LayerReached(6))
    assert m.holds() == [True] and m.state.layer == 5


def test_arming_a_passed_layer_is_refused():
    m = Machine()
    m.feed(PrintStarted())
    m.feed(LayerReached(8))
    m.feed(HoldCommand("a", plan=Armed(frozenset({3, 8}))))
    assert m.replies("a")[0].code == "layer_passed" and m.state.armed is None
    m.feed(HoldCommand("b", plan=Armed(frozenset({3, 9}))))
    assert m.replies("b")[0].ok


def test_a_plan_ends_with_its_print():
    m = Machine()
    m.feed(PrintStarted())
    m.feed(HoldCommand("a", plan=Armed(every=2)))
    m.feed(PrintStopped("done"))
    assert m.state.armed is None and m.events()[-1] == "hold_disarmed"
    m.feed(PrintStarted())
    m.feed(LayerReached(2))
    assert m.holds() == []


def test_release_with_disarm_drops_the_plan():
    m = held(every=5)
    m.feed(ReleaseRequested("r", disarm=True))
    assert m.state.armed is None and m.holds() == [True, False]
    m.feed(LayerReached(10))
    assert m.holds() == [True, False]


# ------------------------------------------------------------------ timeouts
def test_confirm_timeout_releases_without_moving():
    m = Machine()
    m.feed(PrintStarted())
    m.feed(HoldCommand("h", now=True))
    assert m.after(29.9) == [] and m.state.phase == "draining"
    out = m.after(0.1)
    assert out[0] == SetJobOnHold(False) and m.state.phase == "idle"
    assert m.replies("h")[0].code == "hold_failed" and "did not confirm the hold" in m.replies("h")[0].message
    assert m.feed(TokenSeen("t.1.1")) == [], "a late echo is stale"


def test_watchdog_releases_an_untouched_hold_at_once():
    m = held()
    m.after(299)
    assert m.state.phase == "held"
    out = m.after(1)
    assert out[0] == SetJobOnHold(False) and out[1].payload["reason"] == "max_hold"


def test_watchdog_returns_the_head_then_releases():
    m = held()
    m.feed(move())
    m.echo()
    out = m.after(300)
    assert isinstance(out[0], SendGcode) and out[0].lines[1] == "G1 X60 Y70 F6000" and m.state.phase == "returning"
    out = m.echo()
    assert out[0] == SetJobOnHold(False) and out[1].payload == {
        "hold_id": 1,
        "layer": 5,
        "reason": "max_hold",
        "returned": True,
        "error": None,
    }


def test_watchdog_counts_from_the_hold_request_not_from_each_move():
    m = held()
    for i in range(4):
        m.after(60, move(f"m{i}", x=20.0 + i))
        m.echo()
    m.after(59)
    assert m.state.phase == "held"
    m.after(1)
    assert m.state.phase == "returning"


def test_move_timeout_answers_and_returns():
    m = held()
    m.feed(move())
    m.after(59.9)
    assert m.state.phase == "busy"
    out = m.after(0.1)
    assert out[0] == Reply("m1", False, code="timeout", message="the printer did not confirm the move within 60 s")
    assert isinstance(out[1], SendGcode) and m.state.phase == "returning"
    assert m.state.release_reason == "move_timeout"


def test_return_timeout_releases_anyway_and_says_so():
    m = held()
    m.feed(move())
    m.echo()
    m.feed(ReleaseRequested("r"))
    m.after(59.9)
    assert m.state.phase == "returning"
    out = m.after(0.1)
    assert out[0] == SetJobOnHold(False) and out[1].payload["returned"] is False
    reply = m.replies("r")[0]
    assert not reply.ok and reply.code == "release_incomplete" and "the print was released" in reply.message
    assert m.holds() == [True, False]


def test_watchdog_during_a_move_interrupts_it():
    m = held()
    m.after(250, move())
    out = m.after(50)
    assert (
        Reply(
            "m1",
            False,
            code="interrupted",
            message="hold released (max_hold) before the printer confirmed this command",
        )
        in out
    )
    assert m.state.phase == "returning"


# ------------------------------------------------------------------ holder, print end
def test_holder_offline_releases_and_disarms():
    m = held(every=5)
    m.feed(move())
    m.echo()
    assert m.feed(HolderOffline("other/coordinator")) == []
    out = m.feed(HolderOffline("octopi/coordinator"))
    assert isinstance(out[0], SendGcode) and m.state.phase == "returning", "the head goes back at once"
    m.echo()
    assert m.holds() == [True, False] and m.events()[-1] == "released"
    assert m.state.armed is not None, "disarmed only once our own connection stayed up (hold/outage.py)"
    out = m.after(HOLDER_GRACE)
    assert [a.event for a in out if isinstance(a, PublishEvent)] == ["hold_disarmed"] and m.state.armed is None


def test_holder_offline_when_idle_only_disarms():
    m = Machine()
    m.feed(HoldCommand("a", plan=Armed(every=2), holder="n/c"))
    assert m.feed(HolderOffline("n/c")) == [] and m.state.armed is not None
    out = m.after(HOLDER_GRACE)
    assert [a.event for a in out if isinstance(a, PublishEvent)] == ["hold_disarmed"] and m.state.armed is None
    assert m.holds() == []


@pytest.mark.parametrize("phase", ["draining", "held", "busy", "returning"])
def test_print_stopped_releases_at_once_in_every_phase(phase):
    m = Machine()
    m.feed(PrintStarted())
    m.feed(HoldCommand("h", now=True))
    if phase != "draining":
        m.feed(ORIGIN)
        m.echo()
    if phase in ("busy", "returning"):
        m.feed(move())
    if phase == "returning":
        m.echo()
        m.feed(ReleaseRequested("r"))
    assert m.state.phase == phase
    out = m.feed(PrintStopped("cancelled"))
    assert out[0] == SetJobOnHold(False) and m.holds() == [True, False] and m.state.phase == "idle"
    assert not m.state.printing
    if phase == "busy":
        assert m.replies("m1")[-1].code == "interrupted"
    if phase == "returning":  # released, but the head did not make it back
        assert m.replies("r")[0].data["returned"] is False and m.replies("r")[0].data["reason"] == "cancelled"


def test_a_new_print_ends_a_stale_hold():
    m = held()
    out = m.feed(PrintStarted())
    assert out[0] == SetJobOnHold(False) and m.state.printing and m.state.last_layer is None


# ------------------------------------------------------------------ moves and gcode while held
def test_move_refusals():
    m = Machine()
    m.feed(move("a"))
    assert m.replies("a")[0].code == "not_held"
    m = held()
    m.feed(move("b", x=250.0))
    reply = m.replies("b")[0]
    assert reply.code == "out_of_range" and reply.data == {"axis": "x", "value": 250.0} and "X 250" in reply.message
    m.feed(move("c", homed=frozenset("xy")))
    assert m.replies("c")[0].code == "not_homed"
    m.feed(move("d", z=1.5))
    assert m.replies("d")[0].code == "below_layer", "layer at Z 1.0 + 2 mm clearance"
    m.feed(move("e"))
    m.feed(move("f"))
    assert m.replies("f")[0].code == "busy"
    assert m.state.phase == "busy" and m.holds() == [True]


def test_no_move_without_an_origin():
    m = Machine()
    m.feed(PrintStarted())
    m.feed(HoldCommand("h", now=True))
    m.echo()  # the M114 reply never came
    m.feed(move("m"))
    assert m.replies("m")[0].code == "no_origin"
    m.feed(ReleaseRequested("r"))
    assert m.holds() == [True, False] and m.replies("r")[0].ok


def test_origin_only_counts_while_draining():
    m = held()
    m.feed(OriginReported(1, 2, 3))
    assert m.state.origin is not None and m.state.origin.pos.x == 60.0


def test_gcode_while_held_waits_for_its_echo_and_restores_modes_on_release():
    m = held()
    m.feed(GcodeRequested("g", ("M117 capture", "M106 S0")))
    assert m.sent[-4:] == ["M117 capture", "M106 S0", "M400", "M118 A1 action:printmesh:t.1.2"]
    assert m.state.phase == "busy" and m.replies("g") == []
    m.echo()
    assert m.replies("g")[0].ok
    out = m.feed(ReleaseRequested("r"))
    modes_only = ("G1 F1800", "G90", "M83", "M400", "M118 A1 action:printmesh:t.1.3")
    assert out[0] == SendGcode(modes_only), "no travel, only modes"
    m.echo()
    assert m.holds() == [True, False]


def test_gcode_refusals_and_idle_passthrough():
    m = held()
    m.feed(GcodeRequested("g", ("G1 X10",)))
    assert m.replies("g")[0].code == "forbidden_gcode" and m.state.phase == "held"
    idle = Machine()
    idle.feed(GcodeRequested("i", ("G28", "G1 X10")))
    assert idle.sent == ["G28", "G1 X10"] and idle.replies("i")[0].ok
    idle.feed(PrintStarted())
    idle.feed(GcodeRequested("p", ("G1 X10",)))
    assert idle.replies("p")[0].code == "forbidden_gcode", "never interleave moves with a running file"
    idle.feed(HoldCommand("h", now=True))
    idle.feed(GcodeRequested("d", ("M117 x",)))
    assert idle.replies("d")[0].code == "busy"


# ------------------------------------------------------------------ release edge cases
def test_release_when_idle_is_harmless():
    m = Machine()
    m.feed(ReleaseRequested("r"))
    assert m.replies("r") == [Reply("r", True, {"held": False})] and m.holds() == []


def test_release_while_draining_is_immediate():
    m = Machine()
    m.feed(PrintStarted())
    m.feed(HoldCommand("h", now=True))
    m.feed(ReleaseRequested("r"))
    assert m.holds() == [True, False] and m.replies("r")[0].ok and m.replies("h")[0].code == "hold_failed"


def test_two_releases_while_returning_both_get_the_answer():
    m = held()
    m.feed(move())
    m.echo()
    m.feed(ReleaseRequested("r1"))
    assert m.feed(ReleaseRequested("r2")) == []
    m.echo()
    assert m.replies("r1")[0].ok and m.replies("r2")[0].ok and m.holds() == [True, False]


def test_stale_and_foreign_tokens_are_ignored():
    m = held()
    m.feed(move())
    assert m.feed(TokenSeen("t.1.1")) == [] and m.feed(TokenSeen("other.1.2")) == []
    assert m.state.phase == "busy"


def test_a_return_that_is_impossible_still_releases():
    m = held()
    m.feed(move())
    m.echo()
    tiny = PrinterProfile(name="p", volume=BuildVolume(width=10, depth=10, height=10))
    m.state = m.state.__class__(**{**m.state.__dict__, "profile": tiny})
    out = m.feed(ReleaseRequested("r"))
    assert (
        out[0] == SetJobOnHold(False) and not m.replies("r")[0].ok and "head not returned" in m.replies("r")[0].message
    )


def test_status_payload():
    m = held(every=5)
    status = status_payload(m.state, m.now)
    assert status.phase == "held" and status.layer == 5 and status.deadline == 1300.0 and status.origin.x == 60
    assert status.armed is not None and status.armed.every == 5 and status.holder == "octopi/coordinator"
    m.feed(ReleaseRequested())
    idle = status_payload(m.state, m.now)
    assert idle.phase == "idle" and idle.origin is None and idle.hold_id is None


def test_pause_and_resume_wait_for_the_release_but_cancel_never_does():
    m = held()
    assert "release it first" in (job_command_refusal(m.state, "pause") or "")
    assert job_command_refusal(m.state, "resume") is not None and job_command_refusal(m.state, "cancel") is None
    assert job_command_refusal(Machine().state, "pause") is None


def test_layer_events_from_the_follower():
    event = LayerEvent(
        ts=1.0, layer=5, z=1.0, height=0.2, file_pos=900, total_layers=10, total_height=2.0, source="markers"
    )
    assert LayerReached.from_event(event) == LayerReached(5, 10, 1.0)
    m = Machine()
    m.feed(HoldCommand("a", plan=Armed(last=True)))
    m.feed(LayerReached.from_event(event.model_copy(update={"layer": 10, "z": 2.0})))
    assert m.state.phase == "draining" and m.state.layer_z == 2.0


def test_hold_now_records_the_current_layer():
    m = Machine()
    m.feed(PrintStarted())
    m.feed(LayerReached(7, z=1.4))
    m.feed(HoldCommand("h", now=True))
    assert m.state.layer == 7 and m.state.layer_z is None, "the origin's Z is the floor"


def test_session_must_be_a_token_word():
    with pytest.raises(ValueError):
        HoldConfig(session="a b")


# ------------------------------------------------------------------ the invariant, under random input
def inputs() -> st.SearchStrategy[HoldInput]:
    """Random inputs, weighted towards those that get a hold going and keep it busy."""
    cid = "?"  # replaced by a unique id when fed, so every command's answers can be counted
    echo = TokenSeen("echo")  # the printer answers whatever is awaited (see the test loop)
    moves = st.builds(
        MoveRequested,
        st.just(cid),
        st.none() | st.floats(-10, 210),
        st.none() | st.floats(-10, 210),
        st.none() | st.floats(0, 30),
        st.none(),
        st.just(XYZ),
        st.just(PROFILE),
    )
    return st.one_of(
        st.just(HoldCommand(cid, now=True, holder="n/c")),
        st.builds(
            HoldCommand,
            st.just(cid),
            st.just(False),
            st.none() | st.builds(Armed, every=st.integers(1, 3)),
            st.sampled_from([None, "n/c"]),
        ),
        st.builds(LayerReached, st.integers(1, 12), st.none() | st.just(12), st.none() | st.floats(0.2, 3)),
        st.just(ORIGIN),
        st.just(echo),
        st.just(echo),
        st.sampled_from([TokenSeen(f"t.{h}.{s}") for h in range(1, 4) for s in range(1, 8)]),
        moves,
        moves,
        st.builds(GcodeRequested, st.just(cid), st.sampled_from([("M117 a",), ("G1 X1",)])),
        st.builds(ReleaseRequested, st.sampled_from([None, cid]), st.booleans()),
        st.just(HolderOffline("n/c")),
        st.sampled_from([BrokerLost(), BrokerBack(), HolderOnline("n/c")]),
        st.just(Tick()),
        st.just(PrintStarted()),
        st.builds(PrintStopped, st.sampled_from(["done", "cancelled"])),
    )


PRELUDE = [
    (0.0, PrintStarted()),
    (0.1, HoldCommand("?", now=True, holder="n/c")),
    (0.2, ORIGIN),
    (0.3, TokenSeen("echo")),
    (0.4, move("?")),
    (0.5, TokenSeen("echo")),
]


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, len(PRELUDE)), st.lists(st.tuples(st.floats(0, 120) | st.floats(0, 2), inputs()), max_size=40))
def test_every_hold_is_released_exactly_once_and_never_outlives_its_watchdog(prelude, script):
    script = PRELUDE[:prelude] + script
    m = Machine()
    held_since = None
    late = 0.0  # the longest gap between inputs during the hold: deadlines are noticed on the next input
    commands: list[str] = []
    for delay, event in script:
        if event == TokenSeen("echo"):
            awaited = m.state.pending.token if m.state.pending else m.state.token
            event = TokenSeen(awaited or "nothing-awaited")
        if getattr(event, "cmd_id", None) == "?":
            commands.append(f"c{len(commands)}")
            event = dataclasses.replace(event, cmd_id=commands[-1])  # type: ignore[type-var]
        before = len(m.actions)
        late = max(late, delay)
        m.feed(event, m.now + delay)
        holds = m.holds()
        assert all(a != b for a, b in itertools.pairwise(holds)), "True and False alternate"
        assert (m.state.phase != "idle") == (holds.count(True) - holds.count(False) == 1)
        if any(isinstance(a, SetJobOnHold) and a.on for a in m.actions[before:]):
            held_since, late = m.now, 0.0
        if m.state.phase != "idle":
            limit = CONFIG.max_hold + max(CONFIG.return_timeout, CONFIG.move_timeout)
            assert held_since is not None and m.now - held_since <= limit + 2 * late
    m.after(CONFIG.max_hold + CONFIG.confirm_timeout)
    m.after(CONFIG.return_timeout)
    assert m.state.phase == "idle" and m.holds().count(True) == m.holds().count(False), "the watchdog always wins"
    m.feed(PrintStopped("done"))
    for cmd_id in commands:
        assert len(m.replies(cmd_id)) == 1, (cmd_id, m.replies(cmd_id))


def test_a_move_or_release_for_an_earlier_hold_never_touches_the_running_one():
    from octoprint_printmesh.hold.types import ReleaseRequested

    m = held()
    running = m.state.hold_id
    before = m.state
    out = m.feed(dataclasses.replace(move(), hold_id=running + 1))
    assert m.state == before and [(r.ok, r.code) for r in out if isinstance(r, Reply)] == [(False, "stale_hold")]
    out = m.feed(ReleaseRequested("r1", hold_id=running + 7))
    assert m.state == before and [(r.ok, r.code) for r in out if isinstance(r, Reply)] == [(False, "stale_hold")]
    assert m.holds() == [True], "nothing released"
    m.feed(dataclasses.replace(move(cmd_id="m2"), hold_id=running))
    m.echo()
    assert m.replies("m2")[0].ok
    m.feed(ReleaseRequested("r2", hold_id=running))
    m.echo()
    assert m.state.phase == "idle" and m.holds() == [True, False] and m.replies("r2")[0].ok
    out = m.feed(ReleaseRequested("r3", hold_id=running))
    assert [(r.ok, r.data) for r in out if isinstance(r, Reply)] == [(True, {"held": False})]


# ------------------------------------------------------------------ views: the held payload and the head
def test_held_payload_is_built_once_with_the_print_it_belongs_to():
    m = Machine()
    m.feed(PrintStarted("cube.gcode", 900.0))
    m.feed(HoldCommand("arm", plan=Armed(frozenset({5}))))
    m.feed(LayerReached(5, total=10, z=1.0))
    m.feed(ORIGIN)
    out = m.echo()
    expected = {"hold_id": 1, "layer": 5, "origin": {"x": 60.0, "y": 70.0, "z": 0.6}, "z": 1.0,
                "path": "cube.gcode", "started_at": 900.0}  # fmt: skip
    assert out[0] == PublishEvent("held", expected)
    assert held_payload(m.state) == expected, "the same view, from the one function that builds it"


def test_head_is_the_origin_when_held_then_each_confirmed_move_and_null_when_idle():
    m = Machine()
    assert status_payload(m.state, m.now).head is None
    m = held()
    assert status_payload(m.state, m.now).head == Point(x=60.0, y=70.0, z=0.6)
    m.feed(move())
    assert status_payload(m.state, m.now).head == Point(x=60.0, y=70.0, z=0.6), "not moved until confirmed"
    m.echo()
    assert status_payload(m.state, m.now).head == Point(x=20.0, y=30.0, z=10.0)
    m.feed(ReleaseRequested("r1"))
    m.echo()
    assert m.state.phase == "idle" and status_payload(m.state, m.now).head is None
