"""The plugin inside a real `octoprint serve` (virtual printer) against a real mosquitto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from octoprint_harness import OctoPrint, start_octoprint

from printmesh_devkit.broker import LocalBroker, free_port

NODE = "octo1"
BASE = f"printmesh/{NODE}/printer"


def plugin_settings(port: int, **extra: object) -> dict:
    return {"node_id": NODE, "mqtt": {"host": "127.0.0.1", "port": port}, **extra}


@pytest.fixture
def octoprint(broker: LocalBroker, tmp_path: Path) -> Iterator[OctoPrint]:
    server = start_octoprint(tmp_path / "octoprint", plugin_settings(broker.port))
    try:
        server.wait_operational()
        yield server
    finally:
        server.stop()


def test_plugin_announces_presence_and_streams_events(observer, octoprint):
    status = observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online", timeout=20)
    assert status["component"] == "printer"
    mark = observer.mark()
    octoprint.api("POST", "/api/printer/command", {"commands": ["G28"]})
    home = observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "Home", timeout=10)
    assert home["ts"] > 0
    assert "printmesh plugin" in octoprint.log() and "connecting to MQTT broker 127.0.0.1" in octoprint.log()
    mark = observer.mark()
    assert octoprint.stop() == 0
    offline = observer.topic(f"{BASE}/status", after=mark, where=lambda d: d["state"] == "offline", timeout=10)
    assert offline["reason"] == "shutdown"


def test_octoprint_carries_on_without_a_broker_and_the_plugin_connects_later(tmp_path):
    port = free_port()
    server = start_octoprint(tmp_path / "octoprint", plugin_settings(port))
    try:
        server.wait_operational()  # no broker at all: OctoPrint is unaffected
        assert server.api("GET", "/api/job")["state"] == "Operational"
        with LocalBroker(port=port, kind="mosquitto") as broker:
            import subprocess

            got = subprocess.run(
                ["mosquitto_sub", "-p", str(broker.port), "-t", f"{BASE}/status", "-C", "1", "-W", "40"],
                capture_output=True, text=True,
            )  # fmt: skip
            assert '"state":"online"' in got.stdout, "the plugin reconnects by itself"
    finally:
        assert server.stop() == 0


def test_invalid_settings_are_reported_and_octoprint_keeps_running(tmp_path):
    server = start_octoprint(tmp_path / "octoprint", plugin_settings(1883, mqtt={"port": "not-a-port"}))
    try:
        server.wait_operational()
        deadline = time.monotonic() + 10
        while "invalid settings" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "printmesh is not connecting: invalid settings: mqtt.port" in server.log()
    finally:
        assert server.stop() == 0


def test_telemetry_is_retained_and_validates_and_follows_a_print(observer, octoprint):
    from printmesh_core.models.printer import (
        LayerProgress,
        PrinterConnection,
        PrinterFans,
        PrinterHeatingEta,
        PrinterJob,
        PrinterProfile,
        PrinterState,
        PrinterTemperatures,
    )

    observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online", timeout=20)
    conn = PrinterConnection.model_validate(
        observer.topic(f"{BASE}/connection", where=lambda d: d["port"] == "VIRTUAL", timeout=10)
    )
    assert conn.port == "VIRTUAL" and conn.baudrate == 115200
    state = PrinterState.model_validate(observer.topic(f"{BASE}/state", where=lambda d: d["flags"]["operational"]))
    assert state.flags.ready
    profile = PrinterProfile.model_validate(observer.topic(f"{BASE}/profile"))
    assert profile.volume.width > 0 and profile.extruder_count >= 1
    octoprint.api("POST", "/api/printer/command", {"commands": ["M104 S60", "M220 S1000", "M221 S1000"]})
    temps = PrinterTemperatures.model_validate(
        observer.topic(f"{BASE}/temperature", where=lambda d: (d["tools"].get("tool0") or {}).get("target") == 60)
    )
    assert temps.tools["tool0"].target == 60
    heating = PrinterHeatingEta.model_validate(
        observer.topic(f"{BASE}/heating", where=lambda d: (d["heaters"].get("tool0") or {}).get("state") == "heating")
    )
    assert heating.heaters["tool0"].target == 60
    octoprint.api("POST", "/api/printer/command", {"commands": ["M106 S128", "M106 P1 S255"]})
    fans = PrinterFans.model_validate(observer.topic(f"{BASE}/fans", where=lambda d: "1" in d["fans"]))
    assert round(fans.fans["0"].speed) == 50 and fans.fans["1"].speed == 100
    mark = observer.mark()
    data = (Path(__file__).parent.parent / "fixtures" / "gcode" / "prusa_zhop_purge.gcode").read_bytes()
    import re

    octoprint.upload("cube.gcode", re.sub(rb"(?m)^M1(09|90)\b", b"M117", data))
    printing = PrinterState.model_validate(
        observer.topic(f"{BASE}/state", after=mark, where=lambda d: d["text"] == "Printing", timeout=20)
    )
    assert printing.flags.printing and not printing.flags.ready
    observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=120)
    progress = LayerProgress.model_validate(
        observer.topic(f"{BASE}/layer_progress", after=mark, where=lambda d: d["current"] == 15, timeout=10)
    )
    assert progress.total == 15 and progress.total_height == 3.0
    job = PrinterJob.model_validate(
        observer.topic(f"{BASE}/job", after=mark, where=lambda d: d["file_name"] == "cube.gcode", timeout=10)
    )
    assert job.file_origin == "local" and job.file_size == len(octoprint.stored("cube.gcode")) > len(data)  # marked
    for topic in ("connection", "state", "profile", "temperature", "job", "layer_progress"):
        assert observer.on(f"{BASE}/{topic}"), topic


def test_a_fan_set_in_octoprint_during_a_marked_print_is_published_at_once(observer, octoprint):
    """A marked print runs with no per-line hook; a line from the Control tab or the terminal
    still reaches the fans (and the modes a hold restores) through ``comm.sendCommand``."""
    from printmesh_core.models.printer import PrinterFans

    observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online", timeout=20)
    data = (Path(__file__).parent.parent / "fixtures" / "gcode" / "prusa_zhop_purge.gcode").read_bytes()
    import re

    mark = observer.mark()
    octoprint.upload("fan.gcode", re.sub(rb"(?m)^M1(09|90)\b", b"M117", data))
    observer.topic(f"{BASE}/layer", after=mark, where=lambda d: d["layer"] >= 2, timeout=60)  # past the first line
    octoprint.api("POST", "/api/printer/command", {"commands": ["M106 P1 S64"]})
    fans = PrinterFans.model_validate(
        observer.topic(f"{BASE}/fans", after=mark, where=lambda d: d["fans"].get("1", {}).get("raw") == 64, timeout=10)
    )
    assert round(fans.fans["1"].speed) == 25 and fans.fans["1"].command == "M106 P1 S64"
    assert octoprint.api("GET", "/api/job")["state"] == "Printing", "it was sent during the print"
    octoprint.api("POST", "/api/job", {"command": "cancel"})
    observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintCancelled", timeout=30)
    deadline = time.monotonic() + 10
    while "followed from its layer marks, with no per-line hook" not in octoprint.log():
        assert time.monotonic() < deadline, "the print was not followed from its marks"
        time.sleep(0.2)


def test_pause_resume_cancel_over_mqtt_with_errors_for_bad_requests(observer, octoprint):
    import re

    observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online", timeout=20)
    mark = observer.mark()

    def call(command: str, payload: str, rid: str) -> dict:
        observer.publish(f"{BASE}/cmd/{command}", payload)
        return observer.topic(f"{BASE}/res/{command}", after=mark, where=lambda d: d["id"] == rid, timeout=10)

    assert call("pause", '{"id": "p0"}', "p0")["error"]["code"] == "not_printing"
    # malformed payloads on every command topic get an error answer; OctoPrint stays healthy
    for command in ("pause", "resume", "cancel", "hold", "move"):
        bad = call(command, json.dumps({"id": f"bad-{command}", "nonsense": True}), f"bad-{command}")
        assert bad["ok"] is False and bad["error"]["code"] in ("invalid_request", "unknown_command")
    assert octoprint.api("GET", "/api/connection")["current"]["state"] == "Operational"
    data = (Path(__file__).parent.parent / "fixtures" / "gcode" / "cura_zhop_purge.gcode").read_bytes()
    octoprint.upload("long.gcode", re.sub(rb"(?m)^M1(09|90)\b", b"M117", data))  # slow: no speed-up
    observer.topic(f"{BASE}/state", after=mark, where=lambda d: d["text"] == "Printing", timeout=20)
    assert call("pause", '{"id": "p1"}', "p1")["ok"]
    observer.topic(f"{BASE}/state", after=mark, where=lambda d: d["flags"]["paused"], timeout=20)
    assert call("cancel", '{"id": "c1"}', "c1")["error"]["code"] == "disabled", "cancel is off by default"
    assert call("resume", '{"id": "r1"}', "r1")["ok"]
    observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintResumed", timeout=20)
    assert octoprint.api("GET", "/api/job")["state"] == "Printing"


def test_home_assistant_discovery_is_announced_with_availability_and_follows_allow_cancel(observer, broker, tmp_path):
    def configs(after: int = 0) -> dict[str, dict]:
        with observer.cond:
            found = {m.topic: m.payload for m in observer.messages[after:] if m.topic.startswith("homeassistant/")}
        return {topic.split("/")[-2]: json.loads(p) for topic, p in found.items() if p}

    server = start_octoprint(tmp_path / "octoprint", plugin_settings(broker.port))
    try:
        server.wait_operational()
        observer.wait_for(lambda m: m.topic.endswith("/printer_resume/config") and bool(m.payload), timeout=20)
        first = configs()
        expected = ["tool0_temperature", "bed_target", "state", "progress", "eta", "fan0_speed", "connected", "pause"]
        assert {f"printer_{oid}" for oid in expected} <= set(first)
        assert "printer_cancel" not in first, "cancel is off by default"
        for oid, c in first.items():
            assert c["unique_id"] == f"printmesh_{NODE}_printer_{oid}"
            assert c["availability"][0]["topic"] == f"{BASE}/status", oid
            assert (c.get("state_topic") or c["command_topic"]).startswith(f"{BASE}/"), oid
    finally:
        assert server.stop() == 0
    mark = observer.mark()
    server = start_octoprint(tmp_path / "octoprint2", plugin_settings(broker.port, commands={"allow_cancel": True}))
    try:
        server.wait_operational()
        cancel = "/printer_cancel/config"
        observer.wait_for(lambda m: m.topic.endswith(cancel) and bool(m.payload), timeout=20, after=mark)
        assert configs(mark)["printer_cancel"]["command_topic"] == f"{BASE}/cmd/cancel"
    finally:
        assert server.stop() == 0
