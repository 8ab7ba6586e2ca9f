"""The broker connection's settings (``mqtt:`` in every config), apart from the rest of the
config so that the rules for reaching a broker (accounts, TLS, backoff) read in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from printmesh_core.config_base import Strict


class TlsConfig(Strict):
    enabled: bool = Field(default=False, description="Connect with TLS.")
    ca_file: Path | None = Field(default=None, description="CA bundle; the system store when unset.")
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Client key (mutual TLS).")
    key_password: SecretStr | None = Field(default=None, description="Passphrase of an encrypted key_file.")
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


RECONNECT_CEILING = 3  # s: with it, every component is back within 5 s of the broker's return


class ReconnectConfig(Strict):
    """paho doubles the delay after each failed attempt, up to ``max_delay``.

    The ceiling is small on purpose: attempts keep coming every ``max_delay`` seconds however
    long the broker was away, so a restarted broker has every component back within
    ``max_delay`` plus one connect (a 30 s ceiling made that 21 s after a 40 s outage, and
    the prints' planned layers passed unheld meanwhile). A refused attempt costs one TCP
    handshake, so trying every few seconds costs nothing worth saving.
    """

    min_delay: int = Field(default=1, ge=1, le=RECONNECT_CEILING, description="First reconnect delay, whole seconds.")
    max_delay: int = Field(
        default=2, ge=1, le=RECONNECT_CEILING, description="Backoff ceiling, whole seconds (at most 3)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectConfig:
        if self.max_delay < self.min_delay:
            raise ValueError("max_delay must be >= min_delay")
        return self


class MqttConfig(Strict):
    host: str = Field(default="localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535)
    anonymous: bool = Field(
        default=False,
        description="Connect to a broker on another machine without an account: a deliberate choice, "
        "since a broker that lets us in anonymously lets anyone on its network command the printers.",
    )
    username: str | None = Field(default=None, validate_default=True, description="Broker account.")
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

    @field_validator("username")
    @classmethod
    def _account(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Only a broker private to this machine may be used without an account, unless the config says so."""
        host = info.data.get("host", "localhost")
        if value is None and not info.data.get("anonymous", False) and not _loopback(host):
            raise ValueError(
                f"required for the broker at {host!r} (another machine); give this process its "
                "account (docs/security.md), or set mqtt.anonymous: true to connect without one on purpose"
            )
        return value


def _loopback(host: str) -> bool:
    return host == "localhost" or host == "::1" or host.startswith("127.")
