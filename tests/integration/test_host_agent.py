"""End to end: the real `printmesh host` process against a real mosquitto."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

from conftest import Observer, make_runtime

from printmesh_core.models import CommandResponse, Status
from printmesh_core.models.host import HostState, ShellResult

NODE = "t1"
BASE = f"printmesh/{NODE}/host"
DISC = "homeassistant/+/printmesh_t1_host/+/config"


def host_config(tmp_path: Path, **host: object) -> dict:
    """Deterministic temperature: an empty sysfs tree and no vcgencmd, unless overridden."""
    empty = tmp_path / "thermal-empty"
    empty.mkdir(exist_ok=True)
    section = {
        "interval": 0.5,
        "temperature_chips": [],
        "thermal_path": str(empty),
        "vcgencmd": "printmesh-test-no-vcgencmd",
        "throttled_path": str(tmp_path / "no-throttled"),
        **host,
    }
    return {"node_id": NODE, "host": section}


def discovery_configs(obs: Observer) -> dict[str, dict]:
    """Latest non-empty discovery config per topic."""
    out: dict[str, dict] = {}
    for m in obs.messages:
        if m.topic.startswith("homeassistant/") and m.topic.endswith("/config") and "printmesh_t1_host" in m.topic:
            if m.payload:
                out[m.topic] = json.loads(m.payload)
            else:
                out.pop(m.topic, None)
    return out


def retained(broker, topic: str, timeout: float = 3.0) -> bytes | None:
    """What a brand-new subscriber receives as the retained message on ``topic``."""
    r = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            str(int(timeout)),
            "--retained-only",
        ],
        capture_output=True,
    )
    return r.stdout.rstrip(b"\n") if r.returncode == 0 else None


def test_status_online_state_validates_and_is_retained(broker, observer, run_agent, tmp_path):
    agent = run_agent("host", host_config(tmp_path))
    status = observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online")
    assert Status.model_validate(status).component == "host"
    state = HostState.model_validate(observer.topic(f"{BASE}/state"))
    for metric in ("cpu", "load", "memory", "swap", "storage", "uptime"):
        assert getattr(state, metric) is not None, f"{metric} missing: {state.unavailable}"
    assert state.cpu and len(state.cpu.per_core) == state.cpu.count
    assert state.storage and "/" in state.storage
    assert "temperature" in state.unavailable and state.temperature is None
    assert "throttling" in state.unavailable
    assert json.loads(retained(broker, f"{BASE}/status") or b"{}")["state"] == "online"
    assert HostState.model_validate_json(retained(broker, f"{BASE}/state") or b"")
    assert agent.proc.poll() is None
    assert agent.log().count("metric temperature unavailable") == 1, "reported once, not every sample"
    time.sleep(1.2)
    assert agent.log().count("metric temperature unavailable") == 1


def test_discovery_is_complete_and_consistent(broker, observer, run_agent, tmp_path):
    cmd = {"name": "hello", "argv": ["echo", "hi"], "interval": 60}
    run_agent("host", host_config(tmp_path, commands=[cmd]))
    observer.topic(f"{BASE}/command/hello")
    time.sleep(1.0)
    configs = discovery_configs(observer)
    published = {m.topic for m in observer.messages}
    assert len(configs) >= 10
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(unique_ids) == len(set(unique_ids))
    for topic, c in configs.items():
        assert c["state_topic"] in published, f"{topic}: state topic {c['state_topic']} never published"
        if "json_attributes_topic" in c:
            assert c["json_attributes_topic"] in published
        assert c["availability"][0]["topic"] == f"{BASE}/status"
        assert c["availability"][0]["value_template"] == "{{ value_json.state }}"
        assert {"identifiers", "name", "model", "sw_version"} <= set(c["device"])
        assert c["name"] and not c["name"].lower().startswith(NODE), "entity name must not repeat the device name"
    by_id = {c["unique_id"].removeprefix("printmesh_t1_host_"): c for c in configs.values()}
    assert by_id["cpu_usage"]["state_class"] == "measurement" and by_id["cpu_usage"]["unit_of_measurement"] == "%"
    assert by_id["disk_root_free"]["device_class"] == "data_size"
    assert by_id["last_boot"]["device_class"] == "timestamp"
    assert "command_hello" in by_id
    assert "cpu_temperature" not in by_id, "an unavailable metric gets no entity"


def test_temperature_from_sysfs_fallback(broker, observer, run_agent, tmp_path):
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48312\n")
    run_agent("host", host_config(tmp_path, thermal_path=str(tmp_path / "thermal")))
    state = HostState.model_validate(observer.topic(f"{BASE}/state"))
    assert state.temperature and state.temperature.celsius == 48.3
    assert state.temperature.source == "sysfs:thermal_zone0 (cpu-thermal)"
    observer.wait_for(lambda m: m.topic.endswith("/cpu_temperature/config") and bool(m.payload))


def test_sigkill_gives_offline_through_last_will(broker, observer, run_agent, tmp_path):
    agent = run_agent("host", host_config(tmp_path))
    observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online")
    mark = observer.mark()
    agent.stop(signal.SIGKILL)
    # mosquitto sends the will when it notices the dead socket: at once for a closed TCP connection
    status = observer.topic(f"{BASE}/status", after=mark, where=lambda d: d["state"] == "offline", timeout=10)
    assert status["reason"] == "lost"
    assert json.loads(retained(broker, f"{BASE}/status") or b"{}")["state"] == "offline"


def test_sigterm_and_sigint_stop_cleanly_with_exit_0(broker, observer, run_agent, tmp_path):
    for sig in (signal.SIGTERM, signal.SIGINT):
        mark = observer.mark()
        agent = run_agent("host", host_config(tmp_path))
        observer.topic(f"{BASE}/status", after=mark, where=lambda d: d["state"] == "online")
        assert agent.stop(sig) == 0
        status = observer.topic(f"{BASE}/status", after=mark, where=lambda d: d["state"] == "offline")
        assert status["reason"] == "shutdown"
        assert "Traceback" not in agent.log()


def test_bad_config_exits_2_naming_the_key(broker, run_agent, tmp_path):
    agent = run_agent("host", {"host": {"mounts": ["relative/path"]}})
    assert agent.proc.wait(10) == 2
    assert "host.mounts" in agent.log() and "Traceback" not in agent.log()
    agent = run_agent("host", {}, env={"PRINTMESH_MQTT__PORT": "not-a-port"})
    assert agent.proc.wait(10) == 2 and "mqtt.port" in agent.log()


def test_broker_restart_restores_status_subscriptions_and_state_within_5s(broker, observer, run_agent, tmp_path):
    agent = run_agent("host", host_config(tmp_path))
    observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online")
    broker.stop()  # mosquitto runs without persistence: every retained message is gone
    restarted = time.monotonic()
    broker.start()
    late = make_runtime(broker, "late-observer")
    late_obs = Observer(late)
    late.subscribe("#", late_obs._record)
    late.start()
    assert late.wait_connected(5)
    late_obs.topic(f"{BASE}/status", timeout=5, where=lambda d: d["state"] == "online")
    late_obs.topic(f"{BASE}/state", timeout=5)
    # subscriptions are back too: the agent answers a command after the restart
    late.publish_absolute(f"{BASE}/cmd/refresh", '{"id": "after-restart"}', qos=1)
    resp = late_obs.topic(f"{BASE}/res/refresh", timeout=5)
    elapsed = time.monotonic() - restarted
    late.stop()
    assert resp["ok"] and resp["id"] == "after-restart"
    assert elapsed < 5.0, f"took {elapsed:.1f}s"
    assert agent.proc.poll() is None


def test_hanging_shell_command_is_killed_at_timeout_and_reported(broker, observer, run_agent, tmp_path):
    marker = f"printmesh-hang-{uuid.uuid4().hex[:8]}"
    cmds = [
        {"name": "hang", "command": f"sleep 30 # {marker}", "shell": True, "timeout": 1, "interval": 60},
        {"name": "big", "argv": ["python3", "-c", "print('x' * 10000)"], "max_output": 100, "interval": 60},
        {"name": "missing", "argv": ["printmesh-no-such-program"], "interval": 60},
    ]
    run_agent("host", host_config(tmp_path, commands=cmds))
    hang = ShellResult.model_validate(observer.topic(f"{BASE}/command/hang", timeout=10))
    assert hang.timed_out and hang.exit_code is None and 0.9 <= hang.duration < 3
    assert "timed out" in (hang.error or "")
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert left.stdout.strip() == "", "the whole process group must be killed"
    big = ShellResult.model_validate(observer.topic(f"{BASE}/command/big"))
    assert big.truncated and len(big.stdout) == 100 and big.exit_code == 0
    missing = ShellResult.model_validate(observer.topic(f"{BASE}/command/missing"))
    assert missing.exit_code is None and "could not start" in (missing.error or "")
    state = observer.topic(f"{BASE}/state")  # metrics kept flowing meanwhile
    assert state["cpu"] is not None


def test_commands_envelope_errors_dedupe_and_mqtt5_response_topic(broker, observer, run_agent, tmp_path):
    agent = run_agent("host", host_config(tmp_path))
    observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online")
    res = f"{BASE}/res/refresh"
    mark = observer.mark()
    observer.publish(f"{BASE}/cmd/refresh", '{"id": "r1"}')
    first = CommandResponse.model_validate(observer.topic(res, after=mark))
    assert first.ok and first.id == "r1" and HostState.model_validate(first.data)
    observer.publish(f"{BASE}/cmd/refresh", '{"id": "r1"}')  # repeated id: not run again, the same answer again
    observer.publish(f"{BASE}/cmd/refresh", "this is not json")
    observer.publish(f"{BASE}/cmd/refresh", '{"id": "r2", "bogus": 1}')
    observer.publish(f"{BASE}/cmd/selfdestruct", '{"id": "r3"}')
    bad = observer.topic(res, after=mark, where=lambda d: d["id"] == "r2")
    assert bad["ok"] is False and bad["error"]["code"] == "invalid_request" and "bogus" in bad["error"]["message"]
    unknown = observer.topic(f"{BASE}/res/selfdestruct", after=mark)
    assert unknown["error"]["code"] == "unknown_command" and unknown["id"] == "r3"
    time.sleep(0.5)
    answers_r1 = [json.loads(m.payload) for m in observer.on(res) if json.loads(m.payload)["id"] == "r1"]
    assert len(answers_r1) == 2 and answers_r1[0] == answers_r1[1], "the repeat gets the first answer, not a new one"
    assert "repeated request id 'r1' for refresh: not run again" in agent.log() and "not valid JSON" in agent.log()
    # MQTT 5: the answer goes to the response topic (inside the reply namespace), with the
    # correlation data echoed
    inbox = f"printmesh/reply/tester/{NODE}/host"
    got: list = []
    requester = make_runtime(broker, "v5-requester")
    requester.subscribe(inbox, got.append)
    requester.start()
    assert requester.wait_connected(5)
    time.sleep(0.2)
    requester.publish_absolute(
        f"{BASE}/cmd/refresh", '{"id": "v5"}', qos=1, response_topic=inbox, correlation_data=b"\x01corr"
    )
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    requester.stop()
    assert got and json.loads(got[0].payload)["id"] == "v5" and got[0].correlation_data == b"\x01corr"
    # commands and responses are never retained
    assert retained(broker, res, timeout=1) is None
    assert agent.proc.poll() is None


def test_retained_command_is_ignored(broker, observer, run_agent, tmp_path):
    observer.publish(f"{BASE}/cmd/refresh", '{"id": "stale"}', retain=True)
    agent = run_agent("host", host_config(tmp_path))
    observer.topic(f"{BASE}/state")
    time.sleep(0.5)
    assert not observer.on(f"{BASE}/res/refresh")
    assert "ignoring retained command" in agent.log()


def test_switched_off_metric_and_disabled_discovery_clear_retained_configs(broker, observer, run_agent, tmp_path):
    cpu_config = "homeassistant/sensor/printmesh_t1_host/cpu_usage/config"
    first = run_agent("host", host_config(tmp_path))
    observer.wait_for(lambda m: m.topic == cpu_config and bool(m.payload))
    assert first.stop() == 0
    mark = observer.mark()
    second = run_agent("host", host_config(tmp_path, metrics={"cpu": False}))
    observer.wait_for(lambda m: m.topic == cpu_config and m.payload == b"", after=mark)
    observer.topic(f"{BASE}/state", after=mark)
    assert retained(broker, cpu_config, timeout=1) is None
    assert retained(broker, "homeassistant/sensor/printmesh_t1_host/memory_usage/config")
    assert second.stop() == 0
    run_agent("host", {**host_config(tmp_path), "discovery": {"enabled": False}})
    time.sleep(1.5)
    assert retained(broker, "homeassistant/sensor/printmesh_t1_host/memory_usage/config", timeout=1) is None


def test_reannounces_on_home_assistant_birth(broker, observer, run_agent, tmp_path):
    run_agent("host", host_config(tmp_path, interval=60))
    observer.topic(f"{BASE}/state")
    time.sleep(0.3)
    mark = observer.mark()
    observer.publish("homeassistant/status", "online")
    observer.wait_for(lambda m: m.topic.endswith("/memory_usage/config") and bool(m.payload), after=mark)
    observer.topic(f"{BASE}/state", after=mark, timeout=3)  # state republished too, long before the next sample


def test_removed_shell_command_has_its_retained_result_cleared(broker, observer, run_agent, tmp_path):
    cmd = {"name": "gone", "argv": ["echo", "bye"], "interval": 60}
    first = run_agent("host", host_config(tmp_path, commands=[cmd]))
    observer.topic(f"{BASE}/command/gone")
    assert first.stop() == 0
    assert retained(broker, f"{BASE}/command/gone")
    run_agent("host", host_config(tmp_path))
    observer.wait_for(lambda m: m.topic == f"{BASE}/command/gone" and m.payload == b"")
    assert retained(broker, f"{BASE}/command/gone", timeout=1) is None


def test_retained_command_published_while_running_is_not_executed(broker, observer, run_agent, tmp_path):
    agent = run_agent("host", host_config(tmp_path, interval=60))
    observer.topic(f"{BASE}/status", where=lambda d: d["state"] == "online")
    time.sleep(0.3)
    observer.publish(f"{BASE}/cmd/refresh", '{"id": "live-retained"}', retain=True)
    observer.publish(f"{BASE}/cmd/refresh", b"", retain=True)  # clearing it is not an error either
    observer.publish(f"{BASE}/cmd/refresh", '{"id": "plain"}')
    observer.topic(f"{BASE}/res/refresh", where=lambda d: d["id"] == "plain")
    assert not [m for m in observer.on(f"{BASE}/res/refresh") if b"live-retained" in m.payload]
    assert "ignoring retained command" in agent.log() and "not valid JSON" not in agent.log()


def test_unreachable_broker_is_logged_not_silent(run_agent, tmp_path):
    from printmesh_devkit.broker import free_port

    agent = run_agent("host", host_config(tmp_path), env={"PRINTMESH_MQTT__PORT": str(free_port())})
    deadline = time.monotonic() + 8
    while "cannot reach broker" not in agent.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "cannot reach broker" in agent.log()
    assert agent.stop() == 0, "SIGTERM while never connected still exits 0"
