"""The hold's replies without a gcode.received hook: echo tokens as action commands, the origin
from PositionUpdate, in whichever order OctoPrint's comm and event threads deliver them; and the
queuing hook's common path."""

from __future__ import annotations

from typing import Any

from manual_clock import ManualClock

from octoprint_printmesh.comm_hooks import ActionHook, CommHooks
from octoprint_printmesh.gcode import echo_line, token_in
from octoprint_printmesh.hold import driver as driver_module
from octoprint_printmesh.hold.driver import Effects, HoldDriver
from octoprint_printmesh.hold.types import HoldCommand, HoldConfig, PrintStarted


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.on_hold: list[bool] = []

    def effects(self) -> Effects:
        return Effects(self.on_hold.append, self.sent.extend, lambda n, p: self.events.append((n, p)), lambda s: None)


def pump(driver: HoldDriver) -> None:
    """Run what the hooks queued for the hold's thread, here (the driver is never started)."""
    while not driver._queue.empty():
        fn = driver._queue.get_nowait()
        assert fn is not None
        fn()
        if driver.active:
            driver.feed(driver_module.Tick())


def draining() -> tuple[HoldDriver, Recorder, ManualClock, str]:
    rec, clock = Recorder(), ManualClock()
    driver = HoldDriver(HoldConfig(session="t"), rec.effects(), clock)
    driver.feed(PrintStarted("part.gcode"))
    driver.feed(HoldCommand("c1", now=True))
    assert driver.state.phase == "draining" and rec.on_hold == [True]
    echo = rec.sent[-1]
    assert echo.startswith("M118 A1 action:printmesh:"), rec.sent
    token = token_in(echo)
    assert token is not None
    return driver, rec, clock, token


def action_of(echo: str) -> str:
    """What OctoPrint passes the action hook for the printer's reply to ``echo`` (virtual M118 A1)."""
    reply = "//" + echo.split(" ", 2)[2]
    return reply[2:].strip()[len("action:") :]


def held_payloads(rec: Recorder) -> list[dict[str, Any]]:
    return [p for name, p in rec.events if name == "held"]


def test_the_echo_line_is_an_action_command_carrying_the_token():
    assert echo_line("s.1.2") == "M118 A1 action:printmesh:s.1.2"
    assert action_of(echo_line("s.1.2")) == "printmesh:s.1.2"


def test_position_then_echo_holds_with_the_origin():
    driver, rec, _, token = draining()
    hook = ActionHook()
    hook.driver = driver
    driver.position({"reason": None, "x": 10.0, "y": 20.0, "z": 0.6, "e": 1.0, "f": 1500.0, "t": 0})
    hook.on_action(None, f"//action:printmesh:{token}", f"printmesh:{token}", name=f"printmesh:{token}", params="")
    pump(driver)
    assert driver.state.phase == "held"
    assert driver.state.origin is not None and (driver.state.origin.pos.x, driver.state.origin.pos.z) == (10.0, 0.6)
    assert len(held_payloads(rec)) == 1


def test_an_echo_that_overtakes_its_position_waits_for_it():
    driver, rec, _, token = draining()
    driver.echoed(f"printmesh:{token}")  # comm thread first
    pump(driver)
    assert driver.state.phase == "draining", "held before the origin is known"
    driver.position({"x": 1.0, "y": 2.0, "z": 3.0})  # event thread later
    pump(driver)
    assert driver.state.phase == "held" and driver.state.origin is not None
    assert driver.state.origin.pos.z == 3.0
    assert len(held_payloads(rec)) == 1


def test_without_a_position_the_echo_holds_after_the_grace():
    driver, rec, clock, token = draining()
    driver.echoed(f"printmesh:{token}")
    pump(driver)
    clock.now += driver_module.ORIGIN_GRACE - 0.1
    driver.feed(driver_module.Tick())
    assert driver.state.phase == "draining"
    clock.now += 0.2
    driver.feed(driver_module.Tick())
    assert driver.state.phase == "held" and driver.state.origin is None
    assert len(held_payloads(rec)) == 1


def test_other_actions_stale_tokens_and_idle_printers_are_ignored():
    driver, _, _, token = draining()
    driver.echoed("pause")
    driver.echoed("printmesh:t.9.9")
    driver.position({"x": None, "y": None, "z": None})
    driver.position({"x": float("nan"), "y": 1.0, "z": 2.0})  # a garbled reply
    driver.position({"x": True, "y": 1.0, "z": float("inf")})
    pump(driver)
    assert driver.state.phase == "draining" and driver.state.origin is None
    idle = HoldDriver(HoldConfig(session="t"), Recorder().effects())
    idle.echoed(f"printmesh:{token}")
    idle.position({"x": 1.0, "y": 2.0, "z": 3.0})
    assert idle._queue.empty(), "nothing is queued while no hold runs"


class Follower:
    def __init__(self, hold_at: set[int]) -> None:
        self.lines: list[tuple[Any, str]] = []
        self.hold_at = hold_at
        self.marked = False

    def on_line(self, tags: Any, line: str, comm: Any = None) -> bool:
        self.lines.append((tags, line))
        return len(self.lines) in self.hold_at


def test_the_queuing_hook_follows_file_lines_tracks_modes_and_suppresses_a_held_line():
    hooks, follower = CommHooks(), Follower(hold_at={2})
    driver = HoldDriver(HoldConfig(session="t"), Recorder().effects())
    fans: list[str] = []
    hooks.attach(follower, driver, fans.append)  # type: ignore[arg-type]
    file_tags = {"source:file", "filepos:10", "fileline:1"}
    assert hooks.on_gcode_queuing(None, "queuing", "G1 X1 Y1 E1", None, "G1", subcode=None, tags=file_tags) is None
    assert hooks.on_gcode_queuing(None, "queuing", "G91", None, "G91", tags=file_tags) == (None,), "held: suppressed"
    assert driver.modes.absolute is True, "a suppressed line is not tracked"
    api = {"source:api", "api:printer.command"}
    assert hooks.on_gcode_queuing(None, "queuing", "G91", None, "G91", tags=api) is None
    assert hooks.on_gcode_queuing(None, "queuing", "M106 S255", None, "M106", tags=None) is None
    assert len(follower.lines) == 2, "only file lines reach the follower"
    assert driver.modes.absolute is False and fans == ["M106 S255"]
    hooks.detach()
    assert hooks.on_gcode_queuing(None, "queuing", "G90", None, "G90", tags=file_tags) is None
    assert driver.modes.absolute is False, "detached: nothing tracked"


def test_the_feed_rate_of_a_move_is_kept_unparsed_and_read_exactly_as_an_eager_parse_would():
    hooks = CommHooks()
    driver = HoldDriver(HoldConfig(session="t"), Recorder().effects())
    hooks.attach(Follower(hold_at=set()), driver, lambda line: None)  # type: ignore[arg-type]
    api = {"source:api"}

    def queue(line: str) -> None:
        hooks.on_gcode_queuing(None, "queuing", line, None, line.split()[0], tags=api)

    queue("G1 X1 Y1 F1500")
    assert driver.tracked._feed_line == "G1 X1 Y1 F1500", "a plainly positive F is kept as the line, not parsed"
    assert driver.modes.feedrate == 1500
    for ignored in ("G1 X2 F0", "G1 X2 F-30", "G0 X3 F", "G1 X4 E1"):  # F <= 0 or bare: the firmware keeps its rate
        queue(ignored)
        assert driver.modes.feedrate == 1500, ignored
    queue("G0 X5 F.5")  # parsed at once (no 1-9 after F)
    assert driver.modes.feedrate == 0.5 and driver.tracked._feed_line is None
    queue("G1 X6 F9000")
    queue("G91")  # a modal line folds the pending feed rate into the modes
    assert driver.modes.feedrate == 9000 and driver.modes.absolute is False and driver.tracked._feed_line is None
    queue("G1 X7 F4800.5")
    queue("G1 X8 F0")
    assert driver.modes.feedrate == 4800.5
    driver.connection_changed()
    assert driver.modes.feedrate is None and driver.modes.absolute is True, "a new connection forgets the modes"


def test_the_origin_a_hold_restores_carries_the_feed_rate_kept_unparsed_by_the_hook():
    driver, _, _, token = draining()
    hooks = CommHooks()
    hooks.attach(Follower(hold_at=set()), driver, lambda line: None)  # type: ignore[arg-type]
    for line in ("M83", "G1 X5 Y5 E0.2 F2400", "G1 X6 E0.1", "G0 X7 F0"):  # the last F is ignored, as by the firmware
        hooks.on_gcode_queuing(None, "queuing", line, None, line.split()[0], tags={"source:file", "filepos:1"})
    driver.position({"x": 1.0, "y": 2.0, "z": 3.0})
    driver.echoed(f"printmesh:{token}")
    pump(driver)
    origin = driver.state.origin
    assert driver.state.phase == "held" and origin is not None
    assert (origin.modes.feedrate, origin.modes.extrusion_relative) == (2400, True)


def test_a_hold_action_that_raises_is_counted_and_the_actions_after_it_still_run():
    rec, clock = Recorder(), ManualClock()
    failures: list[tuple[str, BaseException]] = []

    def refuse(on: bool) -> None:
        raise RuntimeError("OctoPrint said no")

    effects = Effects(refuse, rec.sent.extend, lambda n, p: rec.events.append((n, p)), lambda s: None,
                      lambda what, exc: failures.append((what, exc)))  # fmt: skip
    driver = HoldDriver(HoldConfig(session="t"), effects, clock)
    driver.feed(PrintStarted("part.gcode"))
    driver.feed(HoldCommand("c1", now=True))
    assert [(what, str(exc)) for what, exc in failures] == [("hold action SetJobOnHold", "OctoPrint said no")]
    assert rec.sent and rec.sent[-1].startswith("M118 A1 action:printmesh:"), "the drain's echo still went out"
    driver._queue.put_nowait(lambda: (_ for _ in ()).throw(ValueError("bad input")))
    driver._queue.put_nowait(None)
    driver._work()  # the hold's thread: an input that raises is counted, the thread goes on to the next
    assert [what for what, _ in failures][-1] == "hold input" and isinstance(failures[-1][1], ValueError)
