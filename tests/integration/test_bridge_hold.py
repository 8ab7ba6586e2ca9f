"""Holds, moves and releases in a real OctoPrint printing real slicer output.

Everything is checked against OctoPrint's own serial log: the hold lands exactly before
the planned layer's first line, no file line is sent while held, no line is lost or sent
twice, every move stays inside the volume, a refused move sends nothing, and the head is
back where the hold began before the print goes on.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Observer
from octoprint_harness import OctoPrint, start_octoprint
from printing import FAST, FIXTURES, command_lines, file_indexes, hold_windows, marks_in, printable, sends

from printmesh_devkit.broker import LocalBroker

NODE = "octo3"
BASE = f"printmesh/{NODE}/printer"
HOLDER = "tester/coordinator"
FILE = "prusa_zhop_purge"
AXIS = re.compile(r"([XYZ])(-?[0-9.]+)")


def settings(broker: LocalBroker, **extra: Any) -> dict[str, Any]:
    return {"node_id": NODE, "mqtt": {"host": "127.0.0.1", "port": broker.port}, **extra}


@pytest.fixture
def octoprint(broker: LocalBroker, tmp_path: Path) -> Iterator[OctoPrint]:
    server = start_octoprint(tmp_path / "octoprint", settings(broker, commands={"allow_gcode": True}))
    try:
        server.wait_operational()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["marked", "unmarked"])
def either_upload(request: pytest.FixtureRequest, broker: LocalBroker, tmp_path: Path) -> Iterator[OctoPrint]:
    """Files marked at upload (the default: no per-line hook) or not (``gcode.marks: false``: followed line by line)."""
    marks = request.param == "marked"
    config = settings(broker, commands={"allow_gcode": True}, gcode={"marks": marks})
    server = start_octoprint(tmp_path / "octoprint", config)
    try:
        server.wait_operational()
        yield server
    finally:
        server.stop()


def call(observer: Observer, name: str, body: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
    request = {"id": uuid.uuid4().hex[:12], **(body or {})}
    mark = observer.mark()
    observer.publish(f"{BASE}/cmd/{name}", json.dumps(request))
    return observer.topic(
        f"{BASE}/res/{name}", after=mark, where=lambda d: d.get("id") == request["id"], timeout=timeout
    )


def event(observer: Observer, name: str, after: int, timeout: float = 60) -> dict[str, Any]:
    return observer.topic(f"{BASE}/event", after=after, where=lambda d: d["event"] == name, timeout=timeout)


def start_holder(broker: LocalBroker) -> subprocess.Popen[bytes]:
    """A process that presents itself as tester/coordinator, with a last will, and waits."""
    code = (
        "import time\n"
        "from printmesh_core.config import MqttConfig\n"
        "from printmesh_core.mqtt import MqttRuntime, Presence\n"
        f"cfg = MqttConfig(host='127.0.0.1', port={broker.port})\n"
        "rt = MqttRuntime(cfg, 'printmesh', 'holder', Presence('tester/coordinator/status', 'coordinator', '0'))\n"
        "rt.start()\n"
        "time.sleep(600)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code])


def hold_window(log: str) -> tuple[list[tuple[float, str]], int, int]:
    """All sends, the index of the first hold's M400 and of the last echo token sent."""
    sent = sends(log)
    windows = hold_windows(sent)
    assert windows, "the hold sent its echo token"
    first = windows[0][0]
    assert [c for _, c in sent[first : first + 2]] == ["M400", "M114"], sent[first - 1 : first + 3]
    return sent, first, windows[-1][1]


def targets(lines: list[str]) -> list[dict[str, float]]:
    return [{a.lower(): float(v) for a, v in AXIS.findall(c)} for c in lines if c.split()[0] in ("G0", "G1")]


def test_hold_at_layer_3_moves_release_and_the_print_completes_untouched(observer, either_upload, broker, request):
    octoprint, marked = either_upload, request.node.callspec.params["either_upload"] == "marked"
    holder = start_holder(broker)
    try:
        observer.topic(f"printmesh/{HOLDER}/status", where=lambda d: d["state"] == "online", timeout=10)
        armed = call(observer, "hold", {"layer": 3, "holder": HOLDER})
        assert armed["ok"] and armed["data"]["armed"]["layers"] == [3], armed
        data = printable(FILE)
        octoprint.api("POST", "/api/printer/command", {"commands": FAST})
        mark = observer.mark()
        octoprint.upload(f"{FILE}.gcode", data)
        held = event(observer, "held", mark)["payload"]
        assert held["layer"] == 3 and held["path"] == f"{FILE}.gcode" and held["started_at"] > 0
        origin = held["origin"]
        status = observer.topic(f"{BASE}/hold", after=mark, where=lambda d: d["phase"] == "held")
        assert status["holder"] == HOLDER and status["deadline"] > time.time()
        assert status["head"] == origin, "the head is at the origin when held"
        assert call(observer, "pause")["error"]["code"] == "held", "OctoPrint's pause must not fight a hold"

        up = call(observer, "move", {"x": 20, "y": 30, "z": origin["z"] + 10})
        assert up["ok"] and up["data"]["position"] == {"x": 20, "y": 30, "z": origin["z"] + 10}, up
        moved = observer.topic(f"{BASE}/hold", after=mark, where=lambda d: d["head"] == up["data"]["position"])
        assert moved["phase"] == "held", "the retained status follows each confirmed move"
        far = call(observer, "move", {"x": 180, "y": 180, "feedrate": 6000})
        assert far["ok"] and far["data"]["position"]["x"] == 180, far
        out = call(observer, "move", {"x": 250, "y": 10})
        assert not out["ok"] and out["error"]["code"] == "out_of_range", out
        assert out["error"]["details"][0]["axis"] == "x"
        low = call(observer, "move", {"z": 0.1})
        assert not low["ok"] and low["error"]["code"] == "below_layer", low
        released = call(observer, "release")
        assert released["ok"] and released["data"]["returned"] is True, released
        event(observer, "PrintDone", mark, timeout=120)
    finally:
        holder.kill()

    marks, unmarked = marks_in(octoprint.stored(f"{FILE}.gcode"))
    assert unmarked == data
    deadline = time.monotonic() + (10 if marked else 1)  # logged when the event thread gets to PrintDone
    while not (followed := "followed from its layer marks, with no per-line hook" in octoprint.log()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    layers = json.loads((FIXTURES / f"{FILE}.json").read_text())["total_layers"]
    if marked:
        assert [m.layer for m in marks] == list(range(1, layers + 1)) and followed
    else:
        assert not marks and not followed, "gcode.marks: false stores the file as uploaded, followed line by line"
    sent, start, end = hold_window(octoprint.serial_log())
    commands = command_lines(data)
    where = file_indexes(sent, [c for _, c in commands])
    layer3 = json.loads((FIXTURES / f"{FILE}.json").read_text())["layers"][2]["offset"]
    first_of_layer3 = next(i for i, (off, _) in enumerate(commands) if off >= layer3)
    # held exactly at the boundary: the last line before is layer 2's, the first after is layer 3's
    assert where[first_of_layer3 - 1] < start and where[first_of_layer3] > end
    assert not [i for i in where if start < i < end], "no file line was sent during the hold"
    during = [c for _, c in sent[start : end + 1]]
    moves = targets(during)
    assert all(0 <= m.get("x", 100) <= 200 and 0 <= m.get("y", 100) <= 200 for m in moves), moves
    assert all(origin["z"] <= m["z"] <= 200 for m in moves if "z" in m), moves
    assert not any("X250" in c or "Z0.1 " in c for _, c in sent), "refused moves never reach the printer"
    last_xy = [m for m in moves if "x" in m][-1]
    last_z = [m for m in moves if "z" in m][-1]
    assert (last_xy["x"], last_xy["y"], last_z["z"]) == (origin["x"], origin["y"], origin["z"]), "head returned"


def test_unhomed_moves_are_refused_and_gcode_follows_the_allow_list(observer, octoprint):
    assert not call(observer, "move", {"x": 10})["ok"], "no move without a hold"
    assert call(observer, "hold", {"layer": 2})["ok"]
    data = printable(FILE, without_homing=True)
    octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    mark = observer.mark()
    octoprint.upload("nohome.gcode", data)
    event(observer, "held", mark)
    refused = call(observer, "move", {"x": 50, "y": 50})
    assert not refused["ok"] and refused["error"]["code"] == "not_homed", refused
    assert call(observer, "gcode", {"lines": ["M117 held by printmesh"]})["ok"]
    for bad in (["G1 X10"], ["M84"], ["M117 ok", "G28"]):
        answer = call(observer, "gcode", {"lines": bad})
        assert not answer["ok"] and answer["error"]["code"] == "not_allowed", answer
    assert call(observer, "release")["ok"]
    event(observer, "PrintDone", mark, timeout=120)
    sent, start, end = hold_window(octoprint.serial_log())
    assert not any(targets([c for _, c in sent[start : end + 1]])), "nothing moved the head during the hold"
    assert "M117 held by printmesh" in [c for _, c in sent[start:end]]
    file_indexes(sent, [c for _, c in command_lines(data)])


def test_holder_death_releases_within_2_s_and_disarms(observer, octoprint, broker):
    holder = start_holder(broker)
    observer.topic(f"printmesh/{HOLDER}/status", where=lambda d: d["state"] == "online", timeout=10)
    assert call(observer, "hold", {"plan": {"every": 2}, "holder": HOLDER})["ok"]
    octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    mark = observer.mark()
    octoprint.upload(f"{FILE}.gcode", printable(FILE))
    assert event(observer, "held", mark)["payload"]["layer"] == 2
    killed = time.time()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    released = event(observer, "released", mark, timeout=5)
    assert released["payload"]["reason"] == "holder_offline"
    assert released["ts"] - killed <= 2.0, f"released {released['ts'] - killed:.2f} s after the holder died"
    event(observer, "PrintDone", mark, timeout=120)
    helds = [m for m in observer.messages[mark:] if m.topic == f"{BASE}/event" and b'"held"' in m.payload]
    assert len(helds) == 1, "the plan was disarmed with its holder"
    assert observer.topic(f"{BASE}/hold", after=mark, where=lambda d: d["armed"] is None)["phase"] == "idle"


def test_malformed_payloads_on_hold_commands_get_errors_and_octoprint_stays_healthy(observer, octoprint):
    bad = [b"not json", b"[1,2]", b'{"id":"b1","layer":"x"}', b'{"id":"b2","x":"abc"}', b'{"id":"b3","bogus":1}']
    bad += [b'{"id":"b4","plan":{}}', b'{"id":"b5","lines":[]}', b'{"id":"b6","layer":1,"now":true}']
    bad += [b'{"id":"b7","holder":"no-slash-here","layer":2}', b'{"id":"b8","lines":["M117 a\\nG1 X1"]}']
    for name in ("hold", "release", "move", "gcode"):
        for i, raw in enumerate(bad):
            rid = f"{name}{i}"
            body = raw.replace(b'"id":"b', f'"id":"{rid}b'.encode())
            mark = observer.mark()
            observer.publish(f"{BASE}/cmd/{name}", body)
            if b'"id"' not in body:
                continue  # no id to answer to: logged only (checked by the health probe below)
            answer = observer.topic(
                f"{BASE}/res/{name}", after=mark, where=lambda d, r=rid: (d["id"] or "").startswith(r)
            )
            assert not answer["ok"] and answer["error"]["code"] == "invalid_request", (name, body, answer)
    assert octoprint.api("GET", "/api/job")["state"] == "Operational"
    assert call(observer, "release")["data"] == {"held": False}
    assert observer.topic(f"{BASE}/status")["state"] == "online"


def test_broker_loss_mid_print_releases_the_hold_and_state_returns_with_the_broker(observer, octoprint, broker):
    assert call(observer, "hold", {"layer": 2})["ok"]
    octoprint.api("POST", "/api/printer/command", {"commands": FAST})
    mark = observer.mark()
    octoprint.upload(f"{FILE}.gcode", printable(FILE))
    event(observer, "held", mark)
    broker.stop()
    deadline = time.monotonic() + 120
    while octoprint.api("GET", "/api/job")["state"] != "Operational" and time.monotonic() < deadline:
        time.sleep(0.5)
    job = octoprint.api("GET", "/api/job")
    assert job["state"] == "Operational" and job["progress"]["completion"] == 100, job
    broker.start()
    mark = observer.mark()
    state = observer.topic(f"{BASE}/state", after=mark, timeout=30)
    assert state["text"] == "Operational", state
    hold = observer.topic(f"{BASE}/hold", after=mark, timeout=10)
    assert hold["phase"] == "idle" and hold["armed"] is None
    assert observer.topic(f"{BASE}/layers", after=mark, timeout=10)["total_layers"] == 15
    assert "released (broker_lost)" in octoprint.log()


def test_watchdog_releases_a_forgotten_hold_and_hold_now_waits_for_the_printer(observer, broker, tmp_path):
    server = start_octoprint(tmp_path / "octoprint", settings(broker, hold={"max_hold": 5}))
    try:
        server.wait_operational()
        assert not call(observer, "hold", {"now": True})["ok"], "nothing to hold when not printing"
        assert call(observer, "hold", {"layer": 2})["ok"]
        server.api("POST", "/api/printer/command", {"commands": FAST})
        mark = observer.mark()
        server.upload(f"{FILE}.gcode", printable(FILE))
        held = event(observer, "held", mark)
        released = event(observer, "released", mark, timeout=15)
        assert released["payload"]["reason"] == "max_hold"
        assert 5.0 <= released["ts"] - held["ts"] <= 6.5, released["ts"] - held["ts"]
        now = call(observer, "hold", {"now": True}, timeout=30)  # answered once the printer confirmed it
        assert now["ok"] and now["data"]["origin"] is not None, now
        assert call(observer, "release")["ok"]
        event(observer, "PrintDone", mark, timeout=120)
        sent, _, _ = hold_window(server.serial_log())
        file_indexes(sent, [c for _, c in command_lines(printable(FILE))])
    finally:
        server.stop()
