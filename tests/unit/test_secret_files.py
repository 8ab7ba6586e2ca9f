"""Secrets from files (``*_file`` / ``PRINTMESH_..._FILE``, for Docker secrets), masked in ``--check``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from printmesh_core.config import AgentSettings, ConfigError, effective_yaml, load_settings


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key in [k for k in os.environ if k.startswith("PRINTMESH_")]:
        monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_password_and_key_password_from_files_in_yaml(tmp_path, monkeypatch):
    _env(monkeypatch)
    pw = _write(tmp_path / "pw", "s3cret-from-file\n")  # echo's newline is dropped
    kp = _write(tmp_path / "kp", "key pass")
    cfg = _write(
        tmp_path / "c.yaml", f"mqtt:\n  username: u\n  password_file: {pw}\n  tls:\n    key_password_file: {kp}\n"
    )
    s = load_settings(AgentSettings, cfg)
    assert s.mqtt.password is not None and s.mqtt.password.get_secret_value() == "s3cret-from-file"
    assert s.mqtt.tls.key_password is not None and s.mqtt.tls.key_password.get_secret_value() == "key pass"
    shown = effective_yaml(s)
    assert "s3cret" not in shown and "key pass" not in shown and str(pw) not in shown
    assert "password: '**********'" in shown and "key_password: '**********'" in shown
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.mqtt)


def test_a_null_secret_file_is_unset(tmp_path, monkeypatch):
    _env(monkeypatch)
    s = load_settings(AgentSettings, _write(tmp_path / "n.yaml", "mqtt:\n  password: null\n  password_file: null\n"))
    assert s.mqtt.password is None


def test_password_file_from_the_environment(tmp_path, monkeypatch):
    pw = _write(tmp_path / "docker-secret", "from-env-file")
    _env(monkeypatch, PRINTMESH_MQTT__USERNAME="u", PRINTMESH_MQTT__PASSWORD_FILE=str(pw))
    s = load_settings(AgentSettings, None)
    assert s.mqtt.password is not None and s.mqtt.password.get_secret_value() == "from-env-file"


def test_secret_file_errors_name_the_key(tmp_path, monkeypatch):
    _env(monkeypatch)
    with pytest.raises(ConfigError, match=r"^mqtt\.password_file: cannot read secret file .*missing"):
        load_settings(AgentSettings, _write(tmp_path / "a.yaml", f"mqtt:\n  password_file: {tmp_path / 'missing'}\n"))
    pw = _write(tmp_path / "pw", "x")
    both = _write(tmp_path / "b.yaml", f"mqtt:\n  password: y\n  password_file: {pw}\n")
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: give either password or password_file, not both"):
        load_settings(AgentSettings, both)
    # only secrets have a _file form: a plain setting's stays an unknown key
    with pytest.raises(ConfigError, match=r"mqtt\.username_file: unknown key"):
        load_settings(AgentSettings, _write(tmp_path / "c.yaml", f"mqtt:\n  username_file: {pw}\n"))
    _env(monkeypatch, PRINTMESH_MQTT__HOST_FILE=str(pw))
    with pytest.raises(ConfigError, match=r"PRINTMESH_MQTT__HOST_FILE: unknown setting 'mqtt\.host_file'"):
        load_settings(AgentSettings, None)
