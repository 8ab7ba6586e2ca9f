"""Physical limits on every move, in a real OctoPrint printing real slicer output.

Issue 13: ``move`` with ``feedrate: 0.001`` passed validation, ``1e-300`` and ``0.0001`` were
written as ``F0``, and the release after such a move ended as ``release_incomplete`` with the
job still "Printing" at the same progress minutes later. Here the same requests are refused
(naming the field and the limits), a legal but slow move over a long way is refused because
it cannot finish within the move timeout, and a move that overruns its timeout anyway (the
printer runs 100 times slower than planned) ends the hold by itself: released with its
reason, the way back queued behind the move, and the print goes on to the end. The serial
log proves that no ``F0`` and no feed rate outside the limits was ever sent by the hold.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from conftest import Observer
from octoprint_harness import start_octoprint
from printing import FAST, command_lines, file_indexes, hold_windows, printable, sends
from test_bridge_hold import FILE, call, event, settings

from printmesh_devkit.broker import LocalBroker

F_WORD = re.compile(r"\bF(-?[0-9.]+)")
AXIS = re.compile(r"([XYZ])(-?[0-9.]+)")


def test_slow_and_f0_moves_are_refused_and_an_overrunning_move_lets_the_print_complete(
    observer: Observer, broker: LocalBroker, tmp_path: Path
) -> None:
    server = start_octoprint(tmp_path / "octoprint", settings(broker, hold={"move_timeout": 5, "return_timeout": 5}))
    try:
        server.wait_operational()
        assert call(observer, "hold", {"layer": 3})["ok"]
        server.api("POST", "/api/printer/command", {"commands": FAST})
        mark = observer.mark()
        server.upload(f"{FILE}.gcode", printable(FILE))
        held = event(observer, "held", mark)["payload"]
        origin = held["origin"]

        for feedrate in (0.001, 1e-300, 0.0001):
            refused = call(observer, "move", {"x": 150, "y": 150, "feedrate": feedrate})
            assert not refused["ok"] and refused["error"]["code"] == "too_slow", refused
            message = refused["error"]["message"]
            assert "feedrate" in message and "60..12000 mm/min" in message, message
            assert refused["error"]["details"][0]["axis"] == "feedrate"
        # legal, but 60 mm/min over ~150 mm is minutes: it cannot finish within the 5 s move timeout
        slow = call(observer, "move", {"x": 190, "y": 190, "feedrate": 60})
        assert not slow["ok"] and slow["error"]["code"] == "too_long", slow
        assert "5 s timeout" in slow["error"]["message"], slow

        # planned at ~1.6 s, but the printer now runs at 1 % of the planned speed (16 s)
        server.api("POST", "/api/printer/command", {"commands": ["M220 S1"]})
        at = observer.mark()
        observer.publish("printmesh/octo3/printer/cmd/move", '{"id": "overrun", "x": 150, "y": 150, "feedrate": 6000}')
        time.sleep(1.0)  # read by the printer only after the move's M400: the way back and the print run fast
        server.api("POST", "/api/printer/command", {"commands": FAST})
        answer = observer.topic("printmesh/octo3/printer/res/move", after=at, where=lambda d: d["id"] == "overrun")
        assert not answer["ok"] and answer["error"]["code"] == "timeout", answer
        released = event(observer, "released", mark, timeout=30)["payload"]
        assert released["reason"] == "move_timeout" and released["returned"] is False, released
        assert "return" in released["error"], released
        progress = server.api("GET", "/api/job")["progress"]["completion"]
        done = event(observer, "PrintDone", mark, timeout=180)
        assert done["ts"] > 0
        server.wait_operational(timeout=30)  # PrintDone fires while OctoPrint still says "Finishing"
        job = server.api("GET", "/api/job")
        assert job["state"] == "Operational" and job["progress"]["completion"] == 100, (progress, job)
        log = server.serial_log()
    finally:
        server.stop()

    sent = sends(log)
    data = printable(FILE)
    file_indexes(sent, [c for _, c in command_lines(data)])  # every file line, once, in order
    (start, end), *_ = hold_windows(sent)
    ours = [c for _, c in sent[start : end + 1]]
    assert not any(c.startswith("G1") and ("X190" in c or "F0.001" in c) for c in ours), "refused moves sent nothing"
    feeds = [float(f) for c in ours if c.split()[0] in ("G0", "G1") for f in F_WORD.findall(c)]
    assert feeds and all(60 <= f <= 12000 for f in feeds), feeds
    assert not [c for _, c in sent if re.search(r"\bF0*(\.0*)?(\s|$)", c)], "F0 was sent"
    # the way back ran before the print went on: the last XY before the next file line is the origin
    moves = [{a: float(v) for a, v in AXIS.findall(c)} for c in ours if c.split()[0] == "G1"]
    last_xy = [m for m in moves if "X" in m][-1]
    last_z = [m for m in moves if "Z" in m][-1]
    assert (last_xy["X"], last_xy["Y"], last_z["Z"]) == (origin["x"], origin["y"], origin["z"]), moves
