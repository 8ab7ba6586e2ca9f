"""The broker connection's settings (``mqtt:`` in every config), apart from the rest of the
config so that the rules for reaching a broker (accounts, TLS, backoff, a cluster's list of
brokers) read in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass
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

    def client_files(self) -> tuple[str | None, str | None, str | None, str | None]:
        """(CA, certificate, key, key passphrase) as the MQTT client's TLS setup takes them."""
        return (
            str(self.ca_file) if self.ca_file else None,
            str(self.cert_file) if self.cert_file else None,
            str(self.key_file) if self.key_file else None,
            self.key_password.get_secret_value() if self.key_password else None,
        )

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


_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*|[A-Za-z0-9_.\-]+)$")  # a name, IPv4 or IPv6


@dataclass(frozen=True)
class Broker:
    """A broker to connect to, port resolved."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class BrokerAddress(Strict):
    """One broker of ``mqtt.hosts``: ``host:port`` (``[v6]:port``), a bare host, or ``{host, port}``."""

    host: str = Field(min_length=1, description="Host name or address.")
    port: int | None = Field(default=None, ge=1, le=65535, description="TCP port; mqtt.port when unset.")

    @model_validator(mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        host, port = text, ""
        if text.startswith("[") and "]:" in text:  # [v6]:port
            host, _, port = text.rpartition(":")
        elif text.count(":") == 1:  # name:port or v4:port (more colons: a bare IPv6 address)
            host, _, port = text.partition(":")
            if not port:
                raise ValueError(f"{value!r}: no port after ':'")
        if port and not port.isdigit():
            raise ValueError(f"{value!r}: the port after ':' must be a number")
        return {"host": host, "port": int(port)} if port else {"host": host}

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST.match(value):
            raise ValueError(f"{value!r} is not a host name or address")
        return value.strip("[]")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host


class MqttConfig(Strict):
    host: str = Field(default="localhost", min_length=1, description="Broker host name or address (one broker).")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port; also that of a hosts entry without one.")
    hosts: list[BrokerAddress] = Field(
        default_factory=list,
        description="Brokers of a cluster, in order of preference ('host:port' or {host, port}); a client that "
        "loses its broker goes on to the next one. Instead of host. Empty: the one broker at host:port.",
    )
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
    max_subscribe_qos: int = Field(
        default=2,
        ge=0,
        le=2,
        description="Highest QoS this client subscribes with. 0 on a NATS cluster: there each QoS 1 subscription "
        "is a JetStream consumer, deleted and made again on every reconnect, which stalls for seconds (and is "
        "refused) while a dead node's leaders are re-elected. With clean sessions QoS 0 loses nothing a live "
        "connection would deliver.",
    )

    @field_validator("hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        """``PRINTMESH_MQTT__HOSTS=a:1883,b:1883``: a comma-separated text is a list too."""
        return [part for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_form(self) -> MqttConfig:
        if self.hosts and "host" in self.model_fields_set:
            raise ValueError("give either mqtt.hosts (a list of brokers) or mqtt.host (one broker), not both")
        listed = [str(b) for b in self.brokers]
        twice = sorted({b for b in listed if listed.count(b) > 1})
        if twice:
            raise ValueError(f"mqtt.hosts lists {', '.join(twice)} more than once")
        return self

    @property
    def brokers(self) -> tuple[Broker, ...]:
        """Every broker to try, in order, each with its port."""
        if not self.hosts:
            return (Broker(self.host, self.port),)
        return tuple(Broker(b.host, b.port or self.port) for b in self.hosts)

    @property
    def where(self) -> str:
        """The brokers for a log line or an error: 'host:port', or the list."""
        return ", ".join(str(b) for b in self.brokers)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("username")
    @classmethod
    def _account(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Only a broker private to this machine may be used without an account, unless the config says so."""
        hosts = [b.host for b in info.data.get("hosts") or []] or [info.data.get("host", "localhost")]
        host = next((h for h in hosts if not _loopback(h)), None)
        if value is None and not info.data.get("anonymous", False) and host is not None:
            raise ValueError(
                f"required for the broker at {host!r} (another machine); give this process its "
                "account (docs/security.md), or set mqtt.anonymous: true to connect without one on purpose"
            )
        return value


def _loopback(host: str) -> bool:
    return host == "localhost" or host == "::1" or host.startswith("127.")
