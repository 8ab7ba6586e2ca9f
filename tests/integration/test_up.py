"""`printmesh up`, the main job: embedded broker + installed agents + live view."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from printmesh_devkit.broker import free_port, port_open


@pytest.mark.parametrize("broker", ["mosquitto"])
def test_up_starts_a_broker_runs_the_host_agent_and_shows_messages(broker, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env["PRINTMESH_NODE_ID"] = "updemo"
    env["PRINTMESH_HOST__INTERVAL"] = "1"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "printmesh_core.cli",
            "up",
            "--broker",
            broker,
            "--broker-port",
            str(port),
            "--duration",
            "4",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"started {broker} on 127.0.0.1:{port}" in out
    assert "printmesh/updemo/host/status" in out and '"state":"online"' in out
    assert out.count("printmesh/updemo/host/state") >= 2, "live view shows the samples as they come"
    assert '"reason":"shutdown"' in out, "the agent stops cleanly and says so"
    assert not port_open("127.0.0.1", port), "the embedded broker is stopped on exit"


def test_up_uses_the_configured_broker_instead_of_starting_one(broker):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update(PRINTMESH_MQTT__HOST=broker.host, PRINTMESH_MQTT__PORT=str(broker.port), PRINTMESH_NODE_ID="cfg")
    r = subprocess.run(
        [sys.executable, "-m", "printmesh_core.cli", "up", "--duration", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "started mosquitto" not in r.stdout and "printmesh/cfg/host/status" in r.stdout


def _print_job(tmp_path, gcode: str) -> tuple[list[str], dict[str, str]]:
    """`printmesh up --octoprint --print`, from tmp_path, with a small capture plan."""
    import yaml
    from octoprint_harness import octoprint_venv
    from printing import printable

    (tmp_path / "part.gcode").write_bytes(printable(gcode))
    config = {
        "node_id": "upjob",
        "camera": {"cameras": [{"name": "bed", "source": {"type": "synthetic", "fps": 20}, "width": 320}]},
        "coordinator": {
            "captures_dir": "caps",
            "printers": [{"node": "upjob", "plan": {"every": 5}, "grid": {"size": 1}, "settle": 0,
                          "cameras": [{"node": "upjob", "camera": "bed"}]}],
        },
    }  # fmt: skip
    (tmp_path / "up.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    cmd = [sys.executable, "-m", "printmesh_core.cli", "up", "--config", "up.yaml", "--broker-port", str(free_port()),
           "--octoprint", str(octoprint_venv()), "--print", "part.gcode"]  # fmt: skip
    return cmd, env


def _left_behind(tmp_path) -> list[str]:
    r = subprocess.run(["pgrep", "-af", str(tmp_path)], capture_output=True, text=True)
    own = str(os.getpid())
    return [line for line in r.stdout.splitlines() if line and not line.startswith(own)]


def test_up_prints_with_octoprint_captures_and_reports_where_the_images_are(tmp_path):
    cmd, env = _print_job(tmp_path, "prusa_zhop_purge")  # 15 layers: holds at 5, 10, 15
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "started OctoPrint http://127.0.0.1:" in out and "layer 15/15" in out
    assert "held at layer 5" in out and "layer 10: 1 images" in out
    assert "done: 3 layers captured, 3 images, 0 failures" in out, out[-2000:]
    folder = next((tmp_path / "caps" / "upjob").iterdir())
    assert f"images and metadata: {folder}" in out and (folder / "job_summary.json").exists()
    assert len(list(folder.glob("layer_*_metadata_*.json"))) == 3
    assert "mosquitto_sub -h 127.0.0.1 -p" in out
    assert not _left_behind(tmp_path), "no process is left behind"


def test_up_stops_everything_on_ctrl_c_mid_print(tmp_path):
    import signal
    import time

    cmd, env = _print_job(tmp_path, "prusa_variable")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "layer 3/" in line:
            break
    running = _left_behind(tmp_path)
    assert any("octoprint" in line for line in running) and any("coordinator" in line for line in running), running
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    time.sleep(1)
    assert not _left_behind(tmp_path), "Ctrl-C leaves no process behind"
