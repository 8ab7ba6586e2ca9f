"""`printmesh up` on a broker it does not own: the preflight, a node id taken by a live node,
a job that stores nothing, and stale or foreign messages that must not be reported.

Each case runs the real `printmesh up` against a real mosquitto; the print cases run a real
OctoPrint with its virtual printer, as tests/test_up.py does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from printmesh_core.models.coordinator import XY, GridSettings, HoldTimings, JobSummary, LayerCapture
from printmesh_devkit.broker import LocalBroker

UP = [sys.executable, "-m", "printmesh_core.cli", "up"]


def _env(broker: LocalBroker, node: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update(PRINTMESH_MQTT__HOST=broker.host, PRINTMESH_MQTT__PORT=str(broker.port), PRINTMESH_NODE_ID=node)
    return env


def _camera_config(tmp_path, width: int, height: int) -> str:
    config = {"camera": {"cameras": [{"name": "bed", "source": {"type": "synthetic"}, "width": width,
                                      "height": height}]}}  # fmt: skip
    (tmp_path / "cam.yaml").write_text(yaml.safe_dump(config))
    return str(tmp_path / "cam.yaml")


def test_up_refuses_a_broker_that_cannot_carry_the_largest_capture(tmp_path):
    # 64 KiB: what a broker like the removed iotcore fallback (20 KiB) or a tight mosquitto allows
    with LocalBroker(extra=["max_packet_size 65536"]) as small:
        env = _env(small, "tight")
        r = subprocess.run([*UP, "--config", _camera_config(tmp_path, 1280, 720), "--duration", "3"],
                           capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert r.returncode == 1, r.stdout + r.stderr
        assert r.stdout == "", "nothing is printed before the check"
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert f"does not carry a {1280 * 720 * 3 + 4096}-byte message" in lines[0]
        assert "camera 'bed' at 1280x720" in lines[0] and "apt-get install mosquitto" in lines[0]
        assert "max_packet_size" in lines[0]

        # the same broker carries a small camera's captures: the check passes and the job runs
        ok = subprocess.run([*UP, "--config", _camera_config(tmp_path, 64, 48), "--duration", "8"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        assert "printmesh/tight/host/status" in ok.stdout


def test_up_refuses_to_start_when_a_live_node_uses_its_node_id(broker, run_agent, observer):
    twin = run_agent("host", env={"PRINTMESH_NODE_ID": "twin"})
    observer.topic("printmesh/twin/host/status", timeout=20, where=lambda d: d["state"] == "online")
    r = subprocess.run([*UP, "--duration", "3"], capture_output=True, text=True, env=_env(broker, "twin"), timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "node id 'twin' is in use by a live node" in lines[0], r.stderr
    assert "its host answered" in lines[0]
    assert twin.proc.poll() is None, "the other node is left alone"


def test_up_starts_over_a_stale_online_claim_whose_owner_is_gone(broker, observer):
    # a persistent broker keeps the last 'online' of a node that died with the broker down
    claim = {"state": "online", "component": "camera", "version": "0.1.0", "ts": time.time() - 3600}
    observer.publish("printmesh/ghost/camera/status", json.dumps(claim), retain=True)
    r = subprocess.run([*UP, "--duration", "8"], capture_output=True, text=True, env=_env(broker, "ghost"), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "printmesh/ghost/host/status" in r.stdout


def _stale_capture(layer: int, coordinator: str, started: float) -> LayerCapture:
    grid = GridSettings(grid_spacing=None, grid_center=XY(x=0, y=0), grid_size=None, points=1, z_clearance=5,
                        settle=0, cameras=["bed"], return_to_origin=False)  # fmt: skip
    timings = HoldTimings(hold_duration=1, waiting_for_moves=0, settle=0, capture=0, store=0, release=0, overhead=0)
    return LayerCapture(
        layer=layer, z_height=4.0, timestamp=started + 60, gcode_file="old.gcode", print_start_time=started,
        printer="upjob", job="old_20250101_000000", hold_id=4, coordinator=coordinator, complete=False,
        images=[], settings=grid, failures=[], timings=timings, release=None, metadata_path=None,
    )  # fmt: skip


def _stale_summary(started: float) -> JobSummary:
    return JobSummary(
        printer="upjob", job="old_20250101_000000", gcode_file="old.gcode", print_start_time=started,
        ended_at=started + 600, outcome="done", layers_captured=[], layers_held=[20], images=0, failures=[],
        total_hold_time=1.0, coordinators=["othermesh"],
    )  # fmt: skip


def _up_print(tmp_path, broker: LocalBroker, config_changes: dict | None = None) -> subprocess.Popen[str]:
    from test_up import _print_job

    cmd, _ = _print_job(tmp_path, "prusa_zhop_purge")  # 15 layers: holds at 5, 10, 15
    if config_changes:
        config = yaml.safe_load((tmp_path / "up.yaml").read_text())
        config["coordinator"]["printers"][0].update(config_changes)
        (tmp_path / "up.yaml").write_text(yaml.safe_dump(config))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(broker, "upjob"), cwd=tmp_path)  # fmt: skip


def test_up_reports_only_its_own_job_on_a_shared_broker(tmp_path, broker, observer):
    old = time.time() - 7200
    # retained by another mesh's coordinator, and by this node id's coordinator in an earlier run
    observer.publish("printmesh/othermesh/coordinator/upjob/capture", _stale_capture(20, "othermesh", old).to_json(),
                     retain=True)  # fmt: skip
    observer.publish("printmesh/othermesh/coordinator/upjob/summary", _stale_summary(old).to_json(), retain=True)
    observer.publish("printmesh/upjob/coordinator/upjob/capture", _stale_capture(25, "upjob", old).to_json(),
                     retain=True)  # fmt: skip
    observer.publish("printmesh/upjob/coordinator/upjob/summary", _stale_summary(old).to_json(), retain=True)
    proc = _up_print(tmp_path, broker)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "layer 3/" in line:  # mid-print, another OctoPrint's old job ends (live, not retained)
            observer.publish("printmesh/othermesh/coordinator/upjob/summary", _stale_summary(old).to_json())
            observer.publish("printmesh/othermesh/coordinator/upjob/capture",
                             _stale_capture(30, "othermesh", old).to_json())  # fmt: skip
    assert proc.wait(60) == 0, "".join(lines)[-3000:]
    out = "".join(lines)
    for foreign in ("layer 20:", "layer 25:", "layer 30:", "0 images"):
        assert foreign not in out, f"{foreign!r} is not this job's: {out[-3000:]}"
    assert "done: 3 layers captured, 3 images, 0 failures" in out, out[-3000:]
    assert "layer 15/15" in out and "layer 5: 1 images" in out


def test_up_says_it_failed_and_exits_non_zero_when_the_job_stores_no_image(tmp_path, broker):
    proc = _up_print(tmp_path, broker, {"cameras": [{"node": "upjob", "camera": "nosuchcamera"}]})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out[-3000:]
    assert "done: 0 layers captured, 0 images" in out, out[-3000:]
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "the job stored 0 images" in failed[0] and "nosuchcamera" in failed[0], out[-3000:]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_preflight_round_trip_works_with_both_protocols(broker, protocol):
    from printmesh_core.config import MqttConfig
    from printmesh_devkit.preflight import check_round_trip

    mqtt = MqttConfig(host=broker.host, port=broker.port, protocol=protocol)
    check_round_trip(mqtt, "printmesh", 1280 * 720 * 3 + 4096, "a 1280x720 capture")


def test_up_says_in_one_line_what_to_install_when_mosquitto_is_missing(monkeypatch, capsys):
    import signal

    from printmesh_devkit import broker as broker_module
    from printmesh_devkit import up
    from printmesh_devkit.broker import free_port

    for name in [k for k in os.environ if k.startswith("PRINTMESH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(broker_module, "mosquitto_path", lambda: None)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        status = up.main(["--broker-port", str(free_port()), "--duration", "1"])
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    out, err = capsys.readouterr()
    assert status == 1 and out == ""
    assert err.strip().splitlines() == ["printmesh up: " + broker_module.MOSQUITTO_MISSING]
    assert "apt-get install mosquitto" in err
