"""examples/home-assistant/dashboard.yaml in the real Home Assistant of the discovery checks.

The shared harness (ha_check.sh: a private mosquitto and HA 2024.3) is copied with one change,
a YAML dashboard in configuration.yaml. The discovery configs are the ones printmesh's own
entity code builds for the example's nodes (``octopi``: bridge, host, camera ``bed``, sensor
``enclosure``; ``server``: the coordinator), published retained. Home Assistant must make an
entity of every id the dashboard names, load the dashboard, and log no warning or error.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from printmesh_core.discovery import entity_config
from printmesh_core.topics import DiscoveryTopics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "examples" / "home-assistant" / "dashboard.yaml"
URL_PATH = "printmesh-printer"
sys.path.insert(0, str(REPO / "scripts"))


@pytest.fixture(scope="module")
def harness() -> tuple[Path, Path]:
    """The harness and HA's venv, found (and HA installed on first use) as scripts/ha-check does."""
    from ha_check.harness import SetupError, ha_venv, harness_path

    try:
        path = harness_path()
        return path, ha_venv(path)
    except SetupError as error:
        pytest.fail(str(error))


def dashboard_entities(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("entity", "entity_id") and isinstance(value, str):
                found.add(value)
            else:
                found |= dashboard_entities(value)
    elif isinstance(node, list):
        for item in node:
            found |= dashboard_entities(item)
    return found


def discovery_messages() -> list[tuple[str, str]]:
    """What the example's components announce, built by their entity code (the doc's examples)."""
    from ha_entities_doc import components

    built = components()
    where = {"Host": ("octopi", "host"), "Sensors": ("octopi", "sensors"), "Camera": ("octopi", "camera"),
             "OctoPrint": ("octopi", "printer"), "Coordinator": ("server", "coordinator")}  # fmt: skip
    messages = []
    for title, entities in built.items():
        node, component = where[title.split()[0]]
        status = f"printmesh/{node}/{component}/status"
        messages.append((status, json.dumps({"state": "online"})))
        topics = DiscoveryTopics("homeassistant", node, component)
        for e in entities:
            config = entity_config(e, node, component, status)
            messages.append((topics.config(*e.key), json.dumps(config)))
    return messages


def patched_harness(harness: Path, tmp: Path) -> Path:
    """ha_check.sh with the example dashboard added to configuration.yaml."""
    text = harness.read_text(encoding="utf-8")
    anchor = "api:\nlogger:\n"
    assert text.count(anchor) == 1, "ha_check.sh changed: the configuration.yaml anchor is gone"
    lovelace = (f"api:\nlovelace:\n  dashboards:\n    {URL_PATH}:\n      mode: yaml\n      filename: {DASHBOARD}\n"
                "      title: Printer\n      show_in_sidebar: true\nlogger:\n")  # fmt: skip
    copy = tmp / "ha_check.sh"
    copy.write_text(text.replace(anchor, lovelace), encoding="utf-8")
    copy.chmod(0o755)
    return copy


def test_dashboard_entities_exist_and_home_assistant_logs_no_warning(
    harness: tuple[Path, Path], tmp_path: Path
) -> None:
    import subprocess

    script, ha_venv = harness
    wanted = dashboard_entities(yaml.safe_load(DASHBOARD.read_text(encoding="utf-8")))
    assert len(wanted) >= 30
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps(discovery_messages()))
    out = tmp_path / "out"
    scenario = [str(ha_venv / "bin" / "python"), str(REPO / "tests" / "ha_dashboard_scenario.py"), str(messages),
                URL_PATH]  # fmt: skip
    expect = " ".join(sorted(wanted))
    cmd = [
        str(patched_harness(script, tmp_path)),
        "-o",
        str(out),
        "-w",
        "60",
        "-t",
        "120",
        "-e",
        expect,
        "--",
        *scenario,
    ]
    env = dict(os.environ, HA_VENV=str(ha_venv))
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:] + (out / "command.log").read_text(errors="replace")[-2000:]

    states = {s["entity_id"] for s in json.loads((out / "states.json").read_text())}
    assert wanted <= states, f"named by the dashboard, unknown to Home Assistant: {sorted(wanted - states)}"
    answer = json.loads((out / "lovelace.json").read_text())
    assert answer["success"] and answer["result"]["title"] == "Printer", answer
    assert dashboard_entities(answer["result"]) == wanted
    registry = {e["entity_id"]: e for e in json.loads((out / "registry.json").read_text())["entities"]}
    diagnostic = {eid for eid, e in registry.items() if e["entity_category"] == "diagnostic"}
    assert {"binary_sensor.octopi_printer_connected", "sensor.server_octopi_failures", "sensor.octopi_uptime",
            "binary_sensor.octopi_enclosure_problem"} <= diagnostic, sorted(diagnostic)  # fmt: skip
    assert not diagnostic & {"sensor.octopi_printer_state", "button.octopi_printer_pause", "camera.octopi_bed"}
    warnings = [x for x in (out / "ha_warnings.txt").read_text(errors="replace").splitlines() if x.strip()]
    assert not warnings, "\n".join(warnings)
    shutil.rmtree(out, ignore_errors=True)
