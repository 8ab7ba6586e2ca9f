"""Configuration: YAML file plus ``PRINTMESH_`` environment variables, validated strictly.

The environment is merged over the YAML here rather than through pydantic-settings: it
is a few lines, it lets a mistyped variable be an error, and it saves every agent (and
OctoPrint's venv) a dependency worth 6 MB of resident memory.

Every secret (``mqtt.password``, ``mqtt.tls.key_password``) may come from a file instead:
``<key>_file`` in YAML, ``PRINTMESH_..._FILE`` in the environment (secretfiles.py).

One YAML file may hold the sections of every component on a device (``host:``,
``sensors:``...); each component validates its own section and skips the others, while
any other unknown key, in the file or in the environment, is an error naming the key.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from printmesh_core.config_base import Strict as Strict
from printmesh_core.mqtt_settings import RECONNECT_CEILING as RECONNECT_CEILING
from printmesh_core.mqtt_settings import MqttConfig as MqttConfig
from printmesh_core.mqtt_settings import ReconnectConfig as ReconnectConfig
from printmesh_core.mqtt_settings import TlsConfig as TlsConfig
from printmesh_core.secretfiles import SecretFileError, field_model, is_secret_file, read_secret_files
from printmesh_core.topics import NAME_MAX, TopicError, check_node_id, check_segment

ENV_PREFIX = "PRINTMESH_"
ENV_DELIMITER = "__"
COMPONENT_SECTIONS = frozenset({"host", "sensors", "camera", "coordinator"})


class ConfigError(Exception):
    """Invalid configuration; the message is one line that names the key."""


class DiscoveryConfig(Strict):
    enabled: bool = Field(default=True, description="Announce Home Assistant MQTT discovery configs.")
    prefix: str = Field(default="homeassistant", description="Home Assistant discovery prefix.")
    birth_quiet: float = Field(
        default=1.0, ge=0.05, le=60, description="Seconds without a Home Assistant birth before re-announcing."
    )
    birth_longest: float = Field(
        default=5.0, ge=0.05, le=300, description="Seconds at most from a burst's first birth to its re-announce."
    )

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        for level in value.split("/"):
            _segment(level, "discovery prefix level")
        return value


class CommandsConfig(Strict):
    dedupe_window: float = Field(default=60.0, ge=0, le=86400, description="Seconds a request id is remembered.")
    workers: int = Field(default=4, ge=1, le=64, description="Threads that run command handlers.")


def _segment(value: str, what: str) -> str:
    try:
        return check_segment(value, what)
    except TopicError as exc:
        raise ValueError(str(exc)) from None


def check_unique(names: list[str], what: str) -> None:
    """For list sections whose names become topic levels: a repeat would share topics."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate {what} name(s): {', '.join(dupes)}")


def default_node_id() -> str:
    """The host name as a valid node id: other characters become '-', at most NAME_MAX, no leading dot."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", socket.gethostname())[:NAME_MAX].lstrip(".") or "printmesh"


class AgentSettings(Strict):
    """Settings every component shares; components subclass it and add their section."""

    node_id: str = Field(default_factory=default_node_id, description="This device's id in topics.")
    topic_root: str = Field(default="printmesh", description="First topic level(s).")
    mqtt: MqttConfig = MqttConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    commands: CommandsConfig = CommandsConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("node_id")
    @classmethod
    def _node(cls, value: str) -> str:
        try:
            return check_node_id(value)
        except TopicError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("topic_root")
    @classmethod
    def _root(cls, value: str) -> str:
        for level in value.split("/"):
            _segment(level, "topic root level")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _skip_other_components(cls, data: Any) -> Any:
        if isinstance(data, dict):
            own = set(cls.model_fields)
            return {k: v for k, v in data.items() if k in own or k not in COMPONENT_SECTIONS}
        return data


S = TypeVar("S", bound=AgentSettings)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping at the top level")
    return data


def _env_value(raw: str, annotation: Any) -> Any:
    """Lists, dicts and models come as JSON; scalars stay text for pydantic to coerce."""
    simple = annotation in (str, int, float, bool) or getattr(annotation, "__origin__", None) is Literal
    if not simple and raw.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def env_overrides(cls: type[AgentSettings], environ: dict[str, str]) -> dict[str, Any]:
    """``PRINTMESH_MQTT__PORT=1884`` → ``{"mqtt": {"port": "1884"}}``; unknown names are errors."""
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)
        if path[0] in COMPONENT_SECTIONS and path[0] not in cls.model_fields:
            continue  # another component's setting
        model: Any = cls
        node = tree
        for i, part in enumerate(path):
            fields = getattr(model, "model_fields", None)
            if fields is None:  # inside a dict-valued setting: the rest of the path are its keys
                for key in path[i:-1]:
                    node = node.setdefault(key, {})
                node[path[-1]] = raw
                break
            if i == len(path) - 1 and is_secret_file(fields, part):
                node[part] = raw  # read by read_secret_files
                break
            if part not in fields:
                raise ConfigError(f"{name}: unknown setting '{'.'.join(path[: i + 1])}'")
            annotation = fields[part].annotation
            if i == len(path) - 1:
                node[part] = _env_value(raw, annotation)
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ConfigError(f"{name}: '{'.'.join(path[: i + 1])}' is set both whole and by parts")
                node, model = child, field_model(annotation)
    return tree


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        shown = err.get("input")
        if isinstance(shown, str) and len(shown) > 60:  # a 300-character name is not repeated whole
            shown = shown[:60] + "…"
        got = "" if err["type"] in ("extra_forbidden", "missing") or isinstance(shown, dict) else f" (got {shown!r})"
        parts.append(f"{key}: {msg}{got}")
    return "; ".join(parts)


def load_settings(cls: type[S], path: Path | None) -> S:
    """YAML file (optional), then the environment over it, then strict validation."""
    data = read_yaml(path) if path is not None else {}
    try:
        data = read_secret_files(cls, merge(data, env_overrides(cls, dict(os.environ))))
        return cls.model_validate(data)
    except SecretFileError as exc:
        raise ConfigError(str(exc)) from None
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def effective_yaml(settings: AgentSettings) -> str:
    """The effective config with secrets masked, as YAML."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
