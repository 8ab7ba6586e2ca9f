"""End to end: the real `printmesh sensors` process against a real mosquitto.

Drivers: the simulated one (replayed from its seed to know exactly what it injected),
linux-iio on a fake sysfs tree (with a real kernel EIO), and dht with fake `board` and
`adafruit_dht` modules put first on PYTHONPATH, raising the library's real messages.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from conftest import Observer, make_runtime

from printmesh_core.models import CommandResponse
from printmesh_core.models.sensors import SensorHealth, SensorReading
from printmesh_sensors.drivers.simulated import LIBRARY_MESSAGES, SimulatedDriver, SimulatedSensor
from printmesh_sensors.physics import dew_point

NODE = "s1"
BASE = f"printmesh/{NODE}/sensors"
FAKES = Path(__file__).parent.parent / "fakes" / "sensors"


def config(*sensors: dict[str, Any], **section: Any) -> dict[str, Any]:
    return {"node_id": NODE, "sensors": {"sensors": list(sensors), **section}}


def payloads(obs: Observer, topic: str, after: int = 0) -> list[dict[str, Any]]:
    with obs.cond:
        messages = obs.messages[after:]
    return [json.loads(m.payload) for m in messages if m.topic == topic and m.payload]


def retained(broker, topic: str, timeout: int = 2) -> bytes | None:
    r = subprocess.run(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-C", "1", "-W", str(timeout),
         "--retained-only"],
        capture_output=True,
    )  # fmt: skip
    return r.stdout.rstrip(b"\n") if r.returncode == 0 else None


def dht_env(tmp_path: Path, steps: list[dict[str, Any]], first: Path | None = None) -> tuple[dict[str, str], Path]:
    script, events = tmp_path / "dht-script.json", tmp_path / "dht-events.jsonl"
    script.write_text(json.dumps({"steps": steps}))
    path = [str(p) for p in (first, FAKES) if p is not None]
    env = {"PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "FAKE_DHT_SCRIPT": str(script), "FAKE_DHT_LOG": str(events)}  # fmt: skip
    return env, events


def iio_device(base: Path, temp: str = "23500", hum: str = "41000") -> Path:
    dev = base / "iio:device0"
    dev.mkdir(parents=True, exist_ok=True)
    (dev / "name").write_text("dht11@4\n")
    (dev / "in_temp_input").write_text(temp + "\n")
    (dev / "in_humidityrelative_input").write_text(hum + "\n")
    return dev


def test_simulated_30_percent_failures_never_publish_a_wrong_value_and_counters_match(observer, run_agent):
    sensor = {"name": "sim", "driver": "simulated", "seed": 4, "interval": 0.1, "failure_rate": 0.3,
              "spike_rate": 0.1, "unavailable_after": 30, "retry": {"attempts": 3, "delay": 0.05}}  # fmt: skip
    agent = run_agent("sensors", config(sensor))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        healths = payloads(observer, f"{BASE}/sim/health")
        if healths and healths[-1]["attempts"] >= 80:
            break
        time.sleep(0.2)
    assert agent.stop() == 0
    health = SensorHealth.model_validate(payloads(observer, f"{BASE}/sim/health")[-1])
    # Replay the same seed for exactly as many attempts as the agent made.
    driver = SimulatedDriver(SimulatedSensor.model_validate(sensor))
    steps = [driver.step() for _ in range(health.attempts)]
    assert health.attempts >= 80 and not any(s.spiked for s in steps[:6]), "precondition of this seed"
    injected = {kind: sum(s.error == kind for s in steps) for kind in LIBRARY_MESSAGES}
    spikes = sum(s.spiked for s in steps)
    assert injected["checksum"] > 5 and injected["timeout"] > 3 and spikes > 3
    e = health.errors
    assert (e.checksum, e.timeout, e.not_found) == (injected["checksum"], injected["timeout"], injected["not_found"])
    assert e.implausible == injected["implausible"] + spikes, "every spike rejected, and counted"
    assert e.io == e.other == 0
    good = {(s.truth.temperature, s.truth.humidity) for s in steps if s.error is None and not s.spiked}
    spiked = {(s.reported.temperature, s.reported.humidity) for s in steps if s.spiked and s.reported}
    readings = [SensorReading.model_validate(p) for p in payloads(observer, f"{BASE}/sim/state")]
    assert len(readings) >= 20 and health.reads == len(readings)
    for r in readings:
        assert (r.temperature, r.humidity) in good, f"published {r} that the sensor never truly read"
        assert (r.temperature, r.humidity) not in spiked
        assert r.dew_point == round(dew_point(r.temperature, r.humidity) or 0, 1) and r.unit == "°C"


def test_linux_iio_fake_sysfs_values_kernel_eio_unavailable_and_back(broker, observer, run_agent, tmp_path):
    dev = iio_device(tmp_path / "iio")
    sensor = {"name": "box", "location": "enclosure", "driver": "linux-iio", "model": "DHT22", "interval": 2,
              "base_path": str(tmp_path / "iio"), "unavailable_after": 4, "retry": {"attempts": 1}}  # fmt: skip
    run_agent("sensors", config(sensor))
    first = observer.topic(f"{BASE}/box/state", timeout=15)
    assert (first["temperature"], first["humidity"], first["dew_point"]) == (23.5, 41.0, 9.5)
    assert first["location"] == "enclosure" and first["driver"] == "linux-iio" and first["model"] == "DHT22"
    observer.topic(f"{BASE}/box/availability", where=lambda d: d["state"] == "online")
    (dev / "in_temp_input").write_text("24100\n")
    observer.topic(f"{BASE}/box/state", where=lambda d: d["temperature"] == 24.1, timeout=10)
    # A real EIO from the kernel: reading /proc/self/mem at offset 0 fails with EIO.
    mark = observer.mark()
    (dev / "in_temp_input").unlink()
    (dev / "in_temp_input").symlink_to("/proc/self/mem")
    failing = observer.topic(f"{BASE}/box/health", after=mark, where=lambda d: d["errors"]["io"] > 0, timeout=10)
    assert failing["last_error"]["kind"] == "io" and "in_temp_input" in failing["last_error"]["message"]
    assert "(EIO)" in failing["last_error"]["message"] and failing["status"] == "failing"
    offline = observer.topic(f"{BASE}/box/availability", after=mark, where=lambda d: d["state"] == "offline")
    unavailable = observer.topic(f"{BASE}/box/health", after=mark, where=lambda d: d["status"] == "unavailable")
    waited = unavailable["ts"] - failing["last_good_read"]
    assert 4.0 <= waited <= 6.5, f"marked unavailable {waited:.1f} s after the last good read (configured: 4)"
    assert "no good read for" in offline["reason"] and "io:" in offline["reason"]
    assert payloads(observer, f"{BASE}/box/state", after=mark) == [], "a failed read is never published"
    assert json.loads(retained(broker, f"{BASE}/box/availability") or b"{}")["state"] == "offline"
    mark = observer.mark()
    (dev / "in_temp_input").unlink()
    (dev / "in_temp_input").write_text("22000\n")
    back = observer.topic(f"{BASE}/box/state", after=mark, timeout=10)
    assert back["temperature"] == 22.0
    observer.topic(f"{BASE}/box/availability", after=mark, where=lambda d: d["state"] == "online")
    assert observer.topic(f"{BASE}/box/health", after=mark, where=lambda d: d["status"] == "ok")["errors"]["io"] >= 1


def test_dht_with_fake_library_real_messages_any_exception_and_pin_released(observer, run_agent, tmp_path):
    steps = [
        {"t": 21.5, "h": 40.0}, {"t": 21.5, "h": 40.1},
        {"error": "Checksum did not validate. Try again."},
        {"error": "A full buffer was not returned. Try again."},
        {"error": "DHT sensor not found, check wiring"},
        {"raise": "ZeroDivisionError", "message": "driver bug"},
        {"t": 21.6, "h": 40.2},
    ]  # fmt: skip
    env, events = dht_env(tmp_path, steps)
    sensor = {"name": "dht", "driver": "dht", "model": "AM2302", "pin": "GPIO4", "interval": 6.5,
              "unavailable_after": 30, "retry": {"attempts": 3, "delay": 0.5}}  # fmt: skip
    agent = run_agent("sensors", config(sensor), env=env)
    first = observer.topic(f"{BASE}/dht/state", timeout=15)
    assert (first["temperature"], first["humidity"], first["model"]) == (21.5, 40.1, "AM2302")
    health = observer.topic(f"{BASE}/dht/health", where=lambda d: d["reads"] >= 2, timeout=30)
    assert health["errors"] == {"checksum": 1, "timeout": 1, "not_found": 1, "implausible": 0, "io": 0, "other": 1}
    assert (
        health["last_error"]["kind"] == "other" and health["last_error"]["message"] == "ZeroDivisionError: driver bug"
    )
    assert [p["temperature"] for p in payloads(observer, f"{BASE}/dht/state")][:2] == [21.5, 21.6]
    assert agent.proc.poll() is None and "driver bug" in agent.log() and "Traceback" not in agent.log()
    assert agent.stop() == 0
    log = [json.loads(line) for line in events.read_text().splitlines()]
    init = log[0]
    assert (init["event"], init["cls"], init["pin"], init["use_pulseio"]) == ("init", "DHT22", "board.D4", False)
    assert not [e for e in log if e["event"] == "stale"], "a value was read inside the library's 2 s window"
    starts = [e["at"] for e in log if e["event"] == "measure"]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 2.0
    assert log[-1]["event"] == "exit", "the pin is released at shutdown"


def test_hung_driver_goes_unavailable_on_time_while_the_others_keep_reading(observer, run_agent, tmp_path):
    env, _ = dht_env(tmp_path, [{"hang": 30}])
    hung = {"name": "hung", "driver": "dht", "model": "DHT22", "pin": 17, "interval": 2, "unavailable_after": 3}
    fine = {"name": "fine", "driver": "simulated", "interval": 0.5}
    agent = run_agent("sensors", config(hung, fine), env=env)
    offline = observer.topic(f"{BASE}/hung/availability", where=lambda d: d["state"] == "offline"
                             and d["reason"] != "waiting for the first good read", timeout=10)  # fmt: skip
    assert "no good read since start" in offline["reason"] and "a read has been running for" in offline["reason"]
    health = observer.topic(f"{BASE}/hung/health", where=lambda d: d["status"] == "unavailable")
    assert health["attempts"] == 1 and health["reads"] == 0
    mark = observer.mark()
    time.sleep(2)
    assert len(payloads(observer, f"{BASE}/fine/state", after=mark)) >= 3, "the other sensor is not blocked"
    started = time.monotonic()
    assert agent.stop() == 0
    assert time.monotonic() - started < 8, "a stuck driver does not hold up shutdown"
    assert "stuck in its driver" in agent.log() and "not released" in agent.log()


def test_missing_vendor_library_is_reported_and_the_agent_runs_on(observer, run_agent, tmp_path):
    env, _ = dht_env(tmp_path, [{"t": 20.0, "h": 50.0}], first=FAKES / "missing")
    dht = {"name": "nolib", "driver": "dht", "model": "DHT11", "pin": "D4", "interval": 2, "unavailable_after": 2}
    sim = {"name": "room", "driver": "simulated", "interval": 0.5}
    agent = run_agent("sensors", config(dht, sim), env=env)
    health = observer.topic(f"{BASE}/nolib/health", where=lambda d: d["status"] == "unavailable", timeout=10)
    assert health["last_error"]["kind"] == "other"
    assert "pip install 'printmesh-sensors[dht]'" in health["last_error"]["message"]
    observer.topic(f"{BASE}/room/state")
    time.sleep(2.5)
    assert agent.proc.poll() is None
    assert agent.log().count("sensor nolib: cannot import adafruit_dht") == 1, "said once, not every cycle"


def test_bad_config_exits_2_naming_the_key(run_agent):
    cases = [
        ({"name": "a", "driver": "dht22"}, "sensors.sensors.0.driver: unknown driver"),
        ({"name": "a", "driver": "dht", "model": "DHT22", "pin": "D99"}, "sensors.sensors.0.dht.pin: invalid pin"),
        ({"name": "a", "driver": "dht", "model": "DHT33", "pin": 4}, "sensors.sensors.0.dht.model"),
        ({"name": "a", "driver": "linux-iio"}, "sensors.sensors.0.linux-iio.model: Field required"),
        ({"name": "a", "driver": "simulated", "bogus": 1}, "sensors.sensors.0.simulated.bogus: unknown key"),
    ]
    for sensor, text in cases:
        agent = run_agent("sensors", config(sensor))
        assert agent.proc.wait(10) == 2, sensor
        assert text in agent.log() and "Traceback" not in agent.log(), agent.log()
    agent = run_agent("sensors", config(), env={"PRINTMESH_SENSORS__TEMPERATURE_UNIT": "kelvin"})
    assert agent.proc.wait(10) == 2 and "sensors.temperature_unit" in agent.log()


def test_read_command_returns_the_reading_or_the_error_never_a_value(observer, run_agent):
    room = {"name": "room", "driver": "simulated", "interval": 60, "temperature": 19.0, "noise": 0}
    dead = {"name": "dead", "driver": "simulated", "interval": 60, "failure_rate": 1.0,
            "failures": {"checksum": 1, "timeout": 0, "not_found": 0, "implausible": 0}}  # fmt: skip
    agent = run_agent("sensors", config(room, dead))
    observer.topic(f"{BASE}/room/state")
    res = f"{BASE}/res/read"
    mark = observer.mark()
    observer.publish(f"{BASE}/cmd/read", '{"id": "r1", "sensor": "room"}')
    ok = CommandResponse.model_validate(observer.topic(res, after=mark, where=lambda d: d["id"] == "r1"))
    assert ok.ok and SensorReading.model_validate(ok.data).temperature == 19.0
    assert payloads(observer, f"{BASE}/room/state", after=mark), "a read is published too"
    observer.publish(f"{BASE}/cmd/read", '{"id": "r2", "sensor": "dead"}')
    failed = observer.topic(res, after=mark, where=lambda d: d["id"] == "r2")
    assert failed["ok"] is False and failed["data"] is None
    assert failed["error"]["code"] == "read_failed"
    assert failed["error"]["message"] == "checksum: Checksum did not validate. Try again."
    observer.publish(f"{BASE}/cmd/read", '{"id": "r3", "sensor": "attic"}')
    unknown = observer.topic(res, after=mark, where=lambda d: d["id"] == "r3")
    assert unknown["error"]["code"] == "unknown_sensor" and "dead, room" in unknown["error"]["message"]
    observer.publish(f"{BASE}/cmd/read", '{"id": "r4"}')
    invalid = observer.topic(res, after=mark, where=lambda d: d["id"] == "r4")
    assert invalid["error"]["code"] == "invalid_request" and "sensor" in invalid["error"]["message"]
    assert payloads(observer, f"{BASE}/dead/state") == [], "the dead sensor never published a value"
    assert agent.proc.poll() is None


def test_discovery_units_and_removed_sensors_are_cleared(broker, observer, run_agent):
    box = {"name": "box", "location": "enclosure", "driver": "simulated", "interval": 1}
    room = {"name": "room", "driver": "simulated", "interval": 2, "model": "DHT11"}
    first = run_agent("sensors", config(box, room, temperature_unit="F"))
    state = observer.topic(f"{BASE}/room/state")
    assert state["unit"] == "°F" and 60 < state["temperature"] < 80
    time.sleep(0.5)
    configs = {m.topic: json.loads(m.payload) for m in observer.messages
               if m.topic.startswith("homeassistant/") and m.payload}  # fmt: skip
    assert len(configs) == 8
    by_id = {c["unique_id"].removeprefix(f"printmesh_{NODE}_sensors_"): c for c in configs.values()}
    assert set(by_id) == {f"{s}_{k}" for s in ("box", "room") for k in ("temperature", "humidity", "dew_point",
                                                                          "problem")}  # fmt: skip
    t = by_id["box_temperature"]
    assert (t["device_class"], t["state_class"], t["unit_of_measurement"]) == ("temperature", "measurement", "°F")
    assert t["expire_after"] == 30 + 1 + 10 and t["name"] == "Box temperature"
    assert [a["topic"] for a in t["availability"]] == [f"{BASE}/status", f"{BASE}/box/availability"]
    assert t["availability_mode"] == "all" and t["state_topic"] == f"{BASE}/box/state"
    assert by_id["room_humidity"]["unit_of_measurement"] == "%" and by_id["room_humidity"]["device_class"] == "humidity"
    assert by_id["room_dew_point"]["unit_of_measurement"] == "°F"
    problem = by_id["box_problem"]
    assert problem["device_class"] == "problem" and problem["state_topic"] == f"{BASE}/box/health"
    assert [a["topic"] for a in problem["availability"]] == [f"{BASE}/status"]
    for c in configs.values():
        assert not c["name"].lower().startswith(NODE) and c["device"]["name"] == NODE
    assert first.stop() == 0
    assert json.loads(retained(broker, f"{BASE}/box/availability") or b"{}")["reason"] == "agent stopped"
    mark = observer.mark()
    run_agent("sensors", config(room))
    cleared = "homeassistant/sensor/printmesh_s1_sensors/box_temperature/config"
    observer.wait_for(lambda m: m.topic == cleared and m.payload == b"", after=mark)
    for leaf in ("state", "health", "availability"):
        observer.wait_for(lambda m, leaf=leaf: m.topic == f"{BASE}/box/{leaf}" and m.payload == b"", after=mark)
    observer.topic(f"{BASE}/room/state", after=mark)
    assert retained(broker, f"{BASE}/box/state", timeout=1) is None
    assert retained(broker, "homeassistant/binary_sensor/printmesh_s1_sensors/room_problem/config")


def test_no_sensors_configured_runs_idle_and_stops_cleanly(observer, run_agent):
    agent = run_agent("sensors", config())
    observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online")
    assert agent.proc.poll() is None
    assert agent.stop(signal.SIGINT) == 0
    assert "no sensors configured" in agent.log()


def test_broker_restart_restores_availability_state_and_health(broker, observer, run_agent):
    run_agent("sensors", config({"name": "room", "driver": "simulated", "interval": 60}))
    observer.topic(f"{BASE}/room/availability", where=lambda d: d["state"] == "online")
    broker.stop()  # mosquitto runs without persistence: every retained message is gone
    broker.start()
    late = make_runtime(broker, "late-observer")
    late_obs = Observer(late)
    late.subscribe("#", late_obs._record)
    late.start()
    try:
        assert late.wait_connected(5)
        # The next read is a minute away: only the reconnect can bring these back.
        late_obs.topic(f"{BASE}/room/availability", timeout=5, where=lambda d: d["state"] == "online")
        late_obs.topic(f"{BASE}/room/state", timeout=5)
        late_obs.topic(f"{BASE}/room/health", timeout=5, where=lambda d: d["status"] == "ok")
    finally:
        late.stop()
