"""examples/node-red/flows.json in the real Node-RED 4 with FlowFuse Dashboard 2.0.

Node-RED runs from examples/node-red/node_modules (scripts/_env.sh ensure_node_red installs it
from package-lock.json) with a temporary userDir and the example flow file, unchanged: its
broker node reads ${PRINTMESH_MQTT_HOST} and ${PRINTMESH_MQTT_PORT}. The test is a Dashboard
client over the dashboard's own socket.io (tests/node_red_socket.js): what a widget would show
arrives as ``msg-input:<widget id>``, and a button press is the ``widget-action`` a browser sends.

The printmesh messages come from real agents (a host agent and a simulated-DHT sensors agent on
the node ``octopi``) and, for the printer's state and temperatures and a capture's JPEG, from
payloads published as the bridge and the camera agent publish them. There, the command that must
come back ``ok`` is the host agent's ``refresh`` (the flow's "Refresh host" button, through the
same envelope node as hold, pause and resume): a real component answers it in a second. Hold and
pause are pressed too: valid HoldRequest/PauseRequest envelopes with a fresh id per press.

The second test is the printer's own buttons against the real bridge in `octoprint serve` with
its virtual printer, mid-print: Pause and Resume are answered ``ok``, the answer reaches the
Answer widget, and the state widget follows the printer to Paused and back to Printing.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentProcess, Observer
from octoprint_harness import OctoPrint, start_octoprint

from printmesh_core.models import CommandResponse
from printmesh_core.models.printer_commands import HoldRequest, PauseRequest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "node-red"
MODULES = EXAMPLE / "node_modules"
NODE = "octopi"
STARTUP_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dashboard:
    """The socket client's events, in order, and a way to press buttons."""

    def __init__(self, url: str) -> None:
        env = dict(os.environ, NODE_RED_MODULES=str(MODULES))
        self.proc = subprocess.Popen(["node", str(REPO / "tests" / "node_red_socket.js"), url], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first event that matches, taken out: the next call waits for a new one."""
        for event in self.seen:
            if match(event):
                self.seen.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if match(event):
                return event
            self.seen.append(event)
        raise AssertionError(f"no matching dashboard event in {timeout}s; seen: {[e['event'] for e in self.seen]}")

    def widget(
        self, widget_id: str, where: Callable[[Any], bool] = lambda _: True, timeout: float = 15.0
    ) -> dict[str, Any]:
        """The next message the flow sent to a widget (the msg object)."""
        event = self.wait(lambda e: e["event"] == f"msg-input:{widget_id}" and where(e["args"][0]), timeout)
        return dict(event["args"][0])

    def press(self, button_id: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(["widget-action", button_id, {"payload": ""}]) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def node_red(broker: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not (MODULES / "node-red" / "red.js").exists():
        pytest.fail("Node-RED is not installed: run scripts/test (ensure_node_red in scripts/_env.sh)")
    user_dir = tmp_path / "node-red"
    user_dir.mkdir()
    flows = user_dir / "flows.json"
    shutil.copy(EXAMPLE / "flows.json", flows)
    port = free_port()
    (user_dir / "settings.js").write_text(
        f"module.exports = {{ flowFile: {json.dumps(str(flows))}, uiHost: '127.0.0.1', uiPort: {port},\n"
        "  credentialSecret: false, telemetry: { enabled: false }, diagnostics: { enabled: false },\n"
        "  editorTheme: { tours: false }, logging: { console: { level: 'info' } } }\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update(PRINTMESH_MQTT_HOST=broker.host, PRINTMESH_MQTT_PORT=str(broker.port), PRINTMESH_NODE=NODE)
    log_path = tmp_path / "node-red.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(["node", str(MODULES / "node-red" / "red.js"), "--userDir", str(user_dir),
                                 "--settings", str(user_dir / "settings.js")], env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        started = time.monotonic()
        while "Connected to broker" not in log_path.read_text(errors="replace"):
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() - started < STARTUP_S, "Node-RED did not connect:\n" + log_path.read_text()
            time.sleep(0.1)
        print(f"Node-RED up and connected in {time.monotonic() - started:.1f} s")
        yield f"http://127.0.0.1:{port}/dashboard/socket.io/", log_path
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_flow_shows_printmesh_and_its_buttons_get_answers(
    node_red: tuple[str, Path], observer: Observer, run_agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    url, log_path = node_red
    (tmp_path / "thermal").mkdir()
    run_agent("host", {"node_id": NODE, "host": {"interval": 1, "temperature_chips": [],
                                                  "thermal_path": str(tmp_path / "thermal")}})  # fmt: skip
    run_agent("sensors", {"node_id": NODE, "sensors": {"sensors": [
        {"name": "enclosure", "driver": "simulated", "seed": 1, "interval": 0.5}]}})  # fmt: skip
    observer.topic(f"printmesh/{NODE}/host/status", where=lambda d: d["state"] == "online")
    dash = Dashboard(url)
    try:
        dash.wait(lambda e: e["event"] == "connected")
        base = f"printmesh/{NODE}/printer"
        state = {"ts": time.time(), "text": "Printing", "flags": {"printing": True}, "on_hold": False}
        observer.publish(f"{base}/state", json.dumps(state), retain=True)
        heat = {"ts": time.time(), "tools": {"tool0": {"actual": 201.5, "target": 210}},
                "bed": {"actual": 59.5, "target": 60}}  # fmt: skip
        observer.publish(f"{base}/temperature", json.dumps(heat), retain=True)
        observer.publish(f"{base}/layer_progress", json.dumps({"ts": time.time(), "current": 3, "total": 40,
                                                                "current_height": 0.6}), retain=True)  # fmt: skip
        jpeg = b"\xff\xd8\xff\xe0" + b"printmesh" * 10 + b"\xff\xd9"
        observer.publish(f"printmesh/{NODE}/camera/bed/capture/layer-3", jpeg)

        assert dash.widget("pm-w-state")["payload"] == "octopi: Printing"
        assert dash.widget("pm-w-layers")["payload"] == "layer 3 of 40 at 0.6 mm"
        points = {dash.widget("pm-w-temps", lambda m, h=h: m["topic"] == h)["payload"] for h in ("tool0", "bed")}
        assert points == {201.5, 59.5}
        image = dash.widget("pm-w-image")["payload"]
        assert image["caption"] == "octopi bed: layer-3" and image["src"].startswith("data:image/jpeg;base64,/9j/")
        sensors = dash.widget("pm-w-sensors")["payload"]
        assert sensors.startswith("enclosure: ") and "°C" in sensors and "dew point" in sensors

        # the harmless command, answered by the real host agent, twice: a fresh id per press
        mark = observer.mark()
        for _ in range(2):
            dash.press("pm-b-refresh")
            assert dash.widget("pm-w-answer")["payload"].startswith("host refresh: sent node-red-refresh-")
            answer = dash.widget("pm-w-answer")
            assert answer["payload"] == "host refresh: ok"
            assert CommandResponse.model_validate(answer["answer"]).ok
        requests = [json.loads(m.payload) for m in observer.messages[mark:]
                    if m.topic == f"printmesh/{NODE}/host/cmd/refresh"]  # fmt: skip
        answers = [json.loads(m.payload) for m in observer.messages[mark:]
                   if m.topic == f"printmesh/{NODE}/host/res/refresh"]  # fmt: skip
        assert len(requests) == 2 and requests[0]["id"] != requests[1]["id"]
        assert [a["id"] for a in answers] == [r["id"] for r in requests] and all(a["ok"] for a in answers)

        # hold and pause: the printer's envelopes, fresh ids
        mark = observer.mark()
        for button in ("pm-b-hold", "pm-b-pause", "pm-b-pause"):
            dash.press(button)
        observer.wait_for(lambda m: m.topic == f"{base}/cmd/pause", after=mark)
        time.sleep(0.5)
        sent = {t: [json.loads(m.payload) for m in observer.messages[mark:] if m.topic == f"{base}/cmd/{t}"]
                for t in ("hold", "pause")}  # fmt: skip
        assert len(sent["hold"]) == 1 and HoldRequest.model_validate(sent["hold"][0]).now
        assert len(sent["pause"]) == 2 and len({PauseRequest.model_validate(p).id for p in sent["pause"]}) == 2
    finally:
        dash.close()
    problems = [x for x in log_path.read_text(errors="replace").splitlines() if "[error]" in x or "[warn]" in x]
    expected = ("Projects disabled", "Using unencrypted credentials")
    assert not [x for x in problems if not any(e in x for e in expected)], problems


@pytest.fixture
def octoprint(broker: Any, tmp_path: Path) -> Iterator[OctoPrint]:
    server = start_octoprint(tmp_path / "octoprint", {"node_id": NODE, "mqtt": {"host": broker.host,
                                                                                "port": broker.port}})  # fmt: skip
    try:
        server.wait_operational()
        yield server
    finally:
        server.stop()


def test_pause_and_resume_buttons_answered_ok_by_the_bridge_in_octoprint(
    octoprint: OctoPrint, node_red: tuple[str, Path], observer: Observer
) -> None:
    """The printer's own buttons against the real bridge in `octoprint serve`, mid-print."""
    url, _ = node_red
    base = f"printmesh/{NODE}/printer"
    observer.topic(f"{base}/status", where=lambda d: d["state"] == "online", timeout=30)
    dash = Dashboard(url)
    try:
        dash.wait(lambda e: e["event"] == "connected")
        data = (REPO / "tests" / "fixtures" / "gcode" / "cura_zhop_purge.gcode").read_bytes()
        octoprint.upload("long.gcode", re.sub(rb"(?m)^M1(09|90)\b", b"M117", data))  # slow: no speed-up
        dash.widget("pm-w-state", lambda m: m["payload"] == "octopi: Printing", timeout=30)
        dash.seen.clear()  # only what follows the press counts
        dash.press("pm-b-pause")
        assert dash.widget("pm-w-answer")["payload"].startswith("printer pause: sent node-red-pause-")
        assert dash.widget("pm-w-answer", timeout=20)["payload"] == "printer pause: ok"
        dash.widget("pm-w-state", lambda m: m["payload"] == "octopi: Paused", timeout=30)
        dash.seen.clear()
        dash.press("pm-b-resume")
        assert dash.widget("pm-w-answer")["payload"].startswith("printer resume: sent node-red-resume-")
        assert dash.widget("pm-w-answer", timeout=20)["payload"] == "printer resume: ok"
        dash.widget("pm-w-state", lambda m: m["payload"] == "octopi: Printing", timeout=30)
        assert octoprint.api("GET", "/api/job")["state"] == "Printing"
    finally:
        dash.close()
        octoprint.api("POST", "/api/job", {"command": "cancel"})
