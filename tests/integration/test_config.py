import subprocess
import sys
from pathlib import Path

import pytest

from printmesh_core.config import AgentSettings, ConfigError, load_settings
from printmesh_host.config import HostSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("PRINTMESH_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_without_any_file():
    s = load_settings(HostSettings, None)
    assert s.mqtt.host == "localhost" and s.mqtt.port == 1883 and s.mqtt.protocol == "5"
    from printmesh_core.config import default_node_id

    assert s.node_id == default_node_id() and s.node_id
    assert s.discovery.prefix == "homeassistant" and s.topic_root == "printmesh"


def test_env_overrides_yaml_with_double_underscore_nesting(tmp_path, monkeypatch):
    path = write(tmp_path, "mqtt:\n  host: fromfile\n  port: 1884\n  username: a-host\nnode_id: a\n")
    monkeypatch.setenv("PRINTMESH_MQTT__HOST", "fromenv")
    monkeypatch.setenv("PRINTMESH_HOST__INTERVAL", "2.5")
    s = load_settings(HostSettings, path)
    assert s.mqtt.host == "fromenv" and s.mqtt.port == 1884 and s.host.interval == 2.5 and s.node_id == "a"


def test_unknown_key_in_yaml_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"mqtt\.hots: unknown key"):
        load_settings(HostSettings, write(tmp_path, "mqtt:\n  hots: x\n"))


def test_unknown_env_var_is_named(monkeypatch):
    monkeypatch.setenv("PRINTMESH_MQTT__PROT", "5")
    with pytest.raises(ConfigError, match=r"PRINTMESH_MQTT__PROT: unknown setting 'mqtt\.prot'"):
        load_settings(HostSettings, None)


def test_bad_value_names_key_and_value(monkeypatch):
    monkeypatch.setenv("PRINTMESH_MQTT__PORT", "99999")
    with pytest.raises(ConfigError, match=r"mqtt\.port: .*less than or equal to 65535 \(got '99999'\)"):
        load_settings(HostSettings, None)


def test_protocol_accepts_yaml_number(tmp_path):
    s = load_settings(HostSettings, write(tmp_path, "mqtt:\n  protocol: 5\n"))
    assert s.mqtt.protocol == "5"
    with pytest.raises(ConfigError, match=r"mqtt\.protocol"):
        load_settings(HostSettings, write(tmp_path, "mqtt:\n  protocol: 4\n"))


def test_node_id_with_slash_or_wildcard_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="node_id: invalid node id"):
        load_settings(HostSettings, write(tmp_path, "node_id: a/b\n"))
    with pytest.raises(ConfigError, match="node_id"):
        load_settings(HostSettings, write(tmp_path, "node_id: '+'\n"))


def test_tls_files_must_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_file: file not found"):
        load_settings(HostSettings, write(tmp_path, "mqtt:\n  tls:\n    enabled: true\n    ca_file: /nope.pem\n"))


def test_other_components_sections_are_skipped_not_rejected(tmp_path):
    s = load_settings(HostSettings, write(tmp_path, "sensors:\n  anything: 1\ncamera: {}\n"))
    assert s.host.interval == 10
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        load_settings(HostSettings, write(tmp_path, "bogus: 1\n"))


def test_shell_command_rules(tmp_path):
    with pytest.raises(ConfigError, match=r"host\.commands\.0: .*needs shell: true"):
        load_settings(HostSettings, write(tmp_path, "host:\n  commands:\n  - name: x\n    command: uptime\n"))
    with pytest.raises(ConfigError, match="duplicate command name"):
        load_settings(
            HostSettings, write(tmp_path, "host:\n  commands:\n  - {name: x, argv: [a]}\n  - {name: x, argv: [b]}\n")
        )
    s = load_settings(
        HostSettings, write(tmp_path, "host:\n  commands:\n  - {name: x, command: 'uptime | wc', shell: true}\n")
    )
    assert s.host.commands[0].shell


def test_invalid_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_settings(AgentSettings, write(tmp_path, "a: [\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(AgentSettings, write(tmp_path, "- 1\n"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(AgentSettings, tmp_path / "missing.yaml")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    e = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "printmesh_core.cli", *args], capture_output=True, text=True, env=e)


def test_check_prints_effective_config_with_secrets_masked():
    r = _cli("host", "--check", env={"PRINTMESH_MQTT__USERNAME": "u", "PRINTMESH_MQTT__PASSWORD": "hunter2"})
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in r.stdout and "password: '**********'" in r.stdout and "username: u" in r.stdout


def test_bad_config_exits_2_with_one_line_and_no_traceback(tmp_path):
    r = _cli("host", "--config", str(write(tmp_path, "host:\n  interval: fast\n")))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "host.interval" in lines[0] and "Traceback" not in r.stderr


def test_help_explains_options():
    r = _cli("host", "--help")
    assert r.returncode == 0
    for option in ("--config", "--check", "--log-level", "PRINTMESH_MQTT__HOST"):
        assert option in r.stdout
