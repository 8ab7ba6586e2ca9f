"""Coordinator pure core, for any sequence of inputs (hypothesis).

Whatever happens during holds (answers, refusals, lost images, timeouts, cameras and the
bridge coming and going, the bridge releasing on its own, the print stopping, aborts,
repeated or overlapping ``held`` events), once everything pending is answered:

* every hold that started is released exactly once by the coordinator, unless the bridge
  ended it first, and then never (a stale release could let go of a later hold);
* every hold gets exactly one metadata, and ``complete`` is true only without failures
  (except a hold that was already over before the previous one's metadata was written:
  it is reported and left alone; the shell makes that impossible by writing at once);
* no move or capture is sent for a hold after its release;
* every grid move lies inside the allowed region, at least the clearance above the layer.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from coordinator_support import PROFILE, Sim, held, hold_status, printer_config
from hypothesis import given, settings
from hypothesis import strategies as st

from printmesh_coordinator.bounds import allowed_region
from printmesh_coordinator.messages import (
    XYZ,
    Abort,
    ActivitySeen,
    Answer,
    BridgePresence,
    CameraPresence,
    Command,
    HoldReleased,
    ImageArrived,
    Input,
    Note,
    PrintEnded,
    PublishCapture,
    SendCapture,
    SendMove,
    SendRelease,
    Tick,
    WriteFailed,
    WriteImage,
    WriteMetadata,
)

ACTIONS = [
    "ok", "ok", "ok", "ok", "refuse", "answer_only", "image_only", "bad_image", "tick", "camera_off", "camera_on",
    "bridge_off", "bridge_on", "status_idle", "released", "print_end", "abort", "stray", "new_hold", "dup_hold",
]  # fmt: skip
action = st.tuples(st.sampled_from(ACTIONS), st.floats(min_value=0, max_value=40))
REGION = allowed_region(PROFILE.volume, 5.0, None)


class Driver:
    """Turns abstract actions into concrete inputs for whatever the machine waits for now."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.sim = Sim(printer_config(**config)).ready()
        self.hold_id = 0
        self.releases: Counter[int] = Counter()
        self.released_holds: set[int] = set()
        self.started: list[int] = []
        self.violations: list[str] = []

    def feed(self, message: Input, dt: float = 0.0) -> list[Command]:
        cmds = self.sim.feed(message, dt)
        run = self.sim.state.run
        for cmd in cmds:
            if isinstance(cmd, SendRelease):
                self.releases[cmd.hold_id] += 1
                self.released_holds.add(cmd.hold_id)
            if isinstance(cmd, SendMove | SendCapture) and run is not None and run.hold_id in self.released_holds:
                self.violations.append(f"{cmd} after the release of hold {run.hold_id}")
            if isinstance(cmd, SendMove) and cmd.z is not None:
                assert run is not None
                inside = REGION.why_outside(cmd.x, cmd.y) is None and cmd.z >= (run.z or 0) + 5.0 - 1e-9
                if not inside:
                    self.violations.append(f"move outside the region: {cmd}")
        return cmds

    def new_hold(self) -> None:
        self.hold_id += 1
        self.started.append(self.hold_id)
        self.feed(held(hold_id=self.hold_id, layer=5 * self.hold_id, z=0.2 * self.hold_id, ts=500.0 + self.hold_id,
                       origin=XYZ(50, 60, 0.2 * self.hold_id)))  # fmt: skip

    def answer_pending(self, ok: bool, parts: str = "both", corrupt: bool = False) -> None:
        run = self.sim.state.run
        if run is None or run.pending is None:
            return
        cmd = self.sim.pending_command()
        if isinstance(cmd, WriteImage | WriteMetadata):
            self.feed(self.sim.written_message(cmd) if ok else WriteFailed(cmd.path, "No space left on device"))
        elif isinstance(cmd, SendCapture) and ok:
            answer, image = self.sim.capture_messages(cmd, corrupt)
            if parts in ("both", "answer"):
                self.feed(answer)
            if parts in ("both", "image"):
                self.feed(image)
        elif ok:
            self.feed(Answer(cmd.request_id, True, {"reason": "requested", "returned": True, "position": {}}))
        else:
            self.feed(Answer(cmd.request_id, False, None, "refused", "no"))

    def do(self, name: str, dt: float) -> None:
        run = self.sim.state.run
        current = run.hold_id if run is not None else self.hold_id
        table: dict[str, Any] = {
            "tick": lambda: self.feed(Tick(), dt),
            "camera_off": lambda: self.feed(CameraPresence("cam", None, False, "lost")),
            "camera_on": lambda: self.feed(CameraPresence("cam", None, True)),
            "bridge_off": lambda: self.feed(BridgePresence(False)),
            "bridge_on": lambda: self.feed(BridgePresence(True)),
            "status_idle": lambda: self.feed(hold_status(phase="idle", ts=500.0 + current + 0.5)),
            "released": lambda: self.feed(HoldReleased(current, "max_hold", True)),
            "print_end": lambda: self.feed(PrintEnded("cancelled") if dt > 20 else ActivitySeen(False)),
            "abort": lambda: self.feed(Abort("test")),
            "stray": lambda: self.feed(Answer("s1.99999", True, {})) and self.feed(ImageArrived("zz", b"", "")),
            "new_hold": lambda: self.new_hold() if self.hold_id < 4 else None,
            "dup_hold": lambda: self.feed(held(hold_id=current, layer=5 * max(current, 1), ts=500.0 + current)),
            "ok": lambda: self.answer_pending(True),
            "refuse": lambda: self.answer_pending(False),
            "answer_only": lambda: self.answer_pending(True, "answer"),
            "image_only": lambda: self.answer_pending(True, "image"),
            "bad_image": lambda: self.answer_pending(True, corrupt=True),
        }
        table[name]()

    def drain(self) -> None:
        """Answer everything still pending, with time passing, until the machine is idle."""
        for _ in range(500):
            run = self.sim.state.run
            if run is None:
                return
            if run.pending is None:
                self.feed(Tick(), 1.0)
            else:
                self.answer_pending(True)
                self.feed(Tick(), 0.01)
        raise AssertionError(f"still running after the drain: {self.sim.state.run}")


def check(driver: Driver) -> None:
    assert not driver.violations, driver.violations
    mds = [c.metadata for c in driver.sim.out if isinstance(c, PublishCapture)]
    by_hold = Counter(md.hold_id for md in mds)
    skipped = {int(c.text.split("hold ")[1].split()[0]) for c in driver.sim.out
               if isinstance(c, Note) and "before it could be handled" in c.text}  # fmt: skip
    started = set(driver.started) - skipped
    assert set(by_hold) == started and all(n == 1 for n in by_hold.values()), (by_hold, started)
    for md in mds:
        lost = any(f.kind == "hold_lost" for f in md.failures)
        assert driver.releases[md.hold_id] == (0 if lost else 1), (md.hold_id, md.failures, driver.releases)
        assert not md.complete or not md.failures
        assert md.timings.hold_duration >= 0 and md.timings.overhead >= 0
    assert set(driver.releases) <= started


@settings(max_examples=300, deadline=None)
@given(st.lists(action, max_size=60), st.sampled_from([{}, {"settle": 0}, {"return_to_origin": False},
                                                        {"grid": {"size": 1}, "cameras": [
                                                            {"node": "cam", "camera": "a"},
                                                            {"node": "cam", "camera": "b"}]}]))  # fmt: skip
def test_any_sequence_releases_each_hold_exactly_once_and_reports_it_once(actions, config):
    driver = Driver(config)
    driver.new_hold()
    for name, dt in actions:
        driver.do(name, dt)
    driver.drain()
    check(driver)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["ok", "ok", "ok", "tick"]), max_size=40))
def test_without_faults_every_hold_is_complete(actions):
    driver = Driver({})
    for _ in range(3):
        driver.new_hold()
        for name in actions:
            driver.do(name, 0.3)
        driver.drain()
    check(driver)
    mds = [c.metadata for c in driver.sim.out if isinstance(c, PublishCapture)]
    assert [md.complete for md in mds] == [True, True, True]
    assert [len(md.images) for md in mds] == [9, 9, 9]
