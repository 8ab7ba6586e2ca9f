"""Configuration: YAML file plus ``PRINTMESH_`` environment variables, validated strictly.

One YAML file may hold the sections of every component on a device (``host:``,
``sensors:``...); each component validates its own section and skips the others, while
any other unknown key, in the file or in the environment, is an error naming the key.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from printmesh_core.topics import TopicError, check_segment

ENV_PREFIX = "PRINTMESH_"
ENV_DELIMITER = "__"
COMPONENT_SECTIONS = frozenset({"host", "sensors", "camera", "coordinator"})


class ConfigError(Exception):
    """Invalid configuration; the message is one line that names the key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(Strict):
    enabled: bool = Field(default=False, description="Connect with TLS.")
    ca_file: Path | None = Field(default=None, description="CA bundle; the system store when unset.")
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Client key (mutual TLS).")
    insecure: bool = Field(default=False, description="Skip hostname verification (testing only).")

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.key_file and not self.cert_file:
            raise ValueError("key_file is set but cert_file is not")
        return self


class ReconnectConfig(Strict):
    min_delay: int = Field(default=1, ge=1, le=300, description="First reconnect delay, whole seconds.")
    max_delay: int = Field(default=30, ge=1, le=3600, description="Backoff ceiling, whole seconds.")

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectConfig:
        if self.max_delay < self.min_delay:
            raise ValueError("max_delay must be >= min_delay")
        return self


class MqttConfig(Strict):
    host: str = Field(default="localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version.")
    keepalive: int = Field(default=30, ge=5, le=3600, description="Keepalive, seconds.")
    client_id: str | None = Field(default=None, description="Defaults to printmesh-<node>-<component>.")
    tls: TlsConfig = TlsConfig()
    reconnect: ReconnectConfig = ReconnectConfig()
    queue_size: int = Field(default=1000, ge=0, le=1_000_000, description="Offline queue bound, messages.")

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


class DiscoveryConfig(Strict):
    enabled: bool = Field(default=True, description="Announce Home Assistant MQTT discovery configs.")
    prefix: str = Field(default="homeassistant", description="Home Assistant discovery prefix.")

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


def default_node_id() -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", socket.gethostname()) or "printmesh"


class AgentSettings(BaseSettings):
    """Settings every component shares; components subclass it and add their section."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid", case_sensitive=False
    )

    node_id: str = Field(default_factory=default_node_id, description="This device's id in topics.")
    topic_root: str = Field(default="printmesh", description="First topic level(s).")
    mqtt: MqttConfig = MqttConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    commands: CommandsConfig = CommandsConfig()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("node_id")
    @classmethod
    def _node(cls, value: str) -> str:
        return _segment(value, "node id")

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the YAML file (passed in as init kwargs).
        return (env_settings, init_settings)


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


def check_env_keys(cls: type[AgentSettings], environ: dict[str, str]) -> None:
    """A mistyped ``PRINTMESH_*`` variable is an error, not silently ignored."""
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)
        if path[0] in COMPONENT_SECTIONS and path[0] not in cls.model_fields:
            continue
        model: Any = cls
        for i, part in enumerate(path):
            fields = getattr(model, "model_fields", None)
            if fields is None:
                break  # a dict or list value: its content is validated by the model
            if part not in fields:
                key = ".".join(path[: i + 1])
                raise ConfigError(f"{name}: unknown setting '{key}'")
            model = fields[part].annotation
            model = next((a for a in getattr(model, "__args__", ()) if hasattr(a, "model_fields")), model)


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        shown = err.get("input")
        got = "" if err["type"] in ("extra_forbidden", "missing") or isinstance(shown, dict) else f" (got {shown!r})"
        parts.append(f"{key}: {msg}{got}")
    return "; ".join(parts)


def load_settings(cls: type[S], path: Path | None) -> S:
    data = read_yaml(path) if path is not None else {}
    check_env_keys(cls, dict(os.environ))
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def effective_yaml(settings: AgentSettings) -> str:
    """The effective config with secrets masked, as YAML."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
