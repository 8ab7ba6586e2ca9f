"""A mosquitto run with the files ``printmesh broker-config`` writes, and clients with accounts."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from conftest import Observer

from printmesh_core.config import MqttConfig
from printmesh_core.mqtt import MqttRuntime
from printmesh_devkit.broker import LocalBroker, free_port
from printmesh_devkit.broker_config import main as broker_config


@dataclass
class AclBroker:
    broker: LocalBroker
    secrets: Path
    out: Path
    tls_port: int | None = None
    pki: Path | None = None  # the test's CA and certificates, when it made them

    @property
    def port(self) -> int:
        return self.broker.port

    def password(self, user: str) -> str:
        return (self.secrets / user).read_text().strip()

    def config(self, user: str | None, password: str | None = None, protocol: str = "5", **kw: Any) -> MqttConfig:
        pw = password if password is not None else (self.password(user) if user else None)
        return MqttConfig.model_validate(
            {"host": "127.0.0.1", "port": self.port, "username": user, "password": pw, "protocol": protocol, **kw}
        )

    def env(self, user: str) -> dict[str, str]:
        """What a device sets: its user name and the file holding its password."""
        return {"PRINTMESH_MQTT__USERNAME": user, "PRINTMESH_MQTT__PASSWORD_FILE": str(self.secrets / user)}

    def connect(self, user: str | None, password: str | None = None, protocol: str = "5",
                wait: float = 5.0) -> tuple[MqttRuntime, bool]:  # fmt: skip
        rt = MqttRuntime(self.config(user, password, protocol), "printmesh", f"acl-{user}-{protocol}-{free_port()}")
        rt.start()
        return rt, rt.wait_connected(wait)

    def observer(self, user: str, *filters: str) -> Observer:
        rt = MqttRuntime(self.config(user), "printmesh", f"observer-{user}-{free_port()}")
        obs = Observer(rt)
        for f in filters:
            rt.subscribe(f, obs._record, qos=1)
        rt.start()
        assert rt.wait_connected(5), f"{user} could not connect: {self.broker.log_tail()}"
        return obs

    def pub(self, user: str, topic: str, payload: str = "x", retain: bool = False) -> str:
        """mosquitto_pub with MQTT 5 and QoS 1: stderr says when the broker refused it."""
        args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-u", user, "-P", self.password(user),
                "-V", "mqttv5", "-q", "1", "-t", topic, "-m", payload, *(["-r"] if retain else [])]  # fmt: skip
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return r.stdout + r.stderr


def generate(folder: Path, mesh: dict[str, Any]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mesh.yaml"
    path.write_text(yaml.safe_dump(mesh))
    out, secrets = folder / "mosquitto", folder / "secrets"
    assert broker_config([str(path), "--out", str(out), "--secrets", str(secrets)]) == 0
    return out, secrets


@contextmanager
def acl_broker(folder: Path, mesh: dict[str, Any], tls: dict[str, Any] | None = None) -> Iterator[AclBroker]:
    """``mesh`` without its broker section: a loopback listener (and a TLS one) on free ports."""
    port = free_port()
    listeners: list[dict[str, Any]] = [{"port": port, "address": "127.0.0.1"}]
    tls_port = None
    if tls is not None:
        tls_port = free_port()
        listeners.append({"port": tls_port, "address": "127.0.0.1", "tls": tls})
    out, secrets = generate(folder, {**mesh, "broker": {"listeners": listeners, "persistence": False}})
    # stderr is unbuffered (stdout is not, into a file): every line, denials included, at once
    with LocalBroker(
        port=port, config_file=out / "mosquitto.conf", extra=["log_dest stderr", "log_type all"]
    ) as broker:
        yield AclBroker(broker, secrets, out, tls_port)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path) -> Path:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all fresh."""
    folder.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=printmesh-test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)  # fmt: skip
    for name, cn in (("server", "localhost"), ("client", "printmesh-client")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=folder)  # fmt: skip
        (folder / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=folder)  # fmt: skip
    return folder
