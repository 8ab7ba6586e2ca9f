"""TLS (with and without a client certificate) and username/password, against mosquitto."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import Observer

from printmesh_core.config import MqttConfig, TlsConfig
from printmesh_core.mqtt import MqttRuntime
from printmesh_devkit.broker import LocalBroker


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)  # fmt: skip
    for name, cn in (("server", "localhost"), ("client", "printmesh-client")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=d)  # fmt: skip
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", str(ext), "-out", f"{name}.pem", cwd=d)  # fmt: skip
    return d


def connect(cfg: MqttConfig, wait: float = 5.0) -> tuple[MqttRuntime, bool]:
    """Negative cases wait less: a refused connection never becomes ready."""
    rt = MqttRuntime(cfg, "printmesh", "tls-client")
    got: list = []
    rt.subscribe("printmesh/t/#", got.append)
    rt.start()
    ok = rt.wait_connected(wait)
    return rt, ok


def test_tls_with_ca_and_client_certificate(pki):
    extra = [f"cafile {pki / 'ca.pem'}", f"certfile {pki / 'server.pem'}", f"keyfile {pki / 'server.key'}",
             "require_certificate true"]  # fmt: skip
    with LocalBroker(kind="mosquitto", extra=extra) as broker:
        tls = TlsConfig(enabled=True, ca_file=pki / "ca.pem", cert_file=pki / "client.pem", key_file=pki / "client.key")
        rt, ok = connect(MqttConfig(host="localhost", port=broker.port, tls=tls))
        assert ok, broker.log_tail()
        obs = Observer(rt)
        rt.subscribe("printmesh/t/x", obs._record)
        rt.publish("t/x", b"over tls", qos=1)
        assert obs.wait_for(lambda m: m.topic == "printmesh/t/x").payload == b"over tls"
        rt.stop()
        # without the client certificate the broker refuses the handshake
        rt, ok = connect(
            MqttConfig(host="localhost", port=broker.port, tls=TlsConfig(enabled=True, ca_file=pki / "ca.pem")), wait=2
        )
        rt.stop()
        assert not ok


def test_tls_rejects_a_server_signed_by_another_ca(pki, tmp_path):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other",
            "-keyout", "o.key", "-out", "other.pem", cwd=tmp_path)  # fmt: skip
    extra = [f"certfile {pki / 'server.pem'}", f"keyfile {pki / 'server.key'}"]
    with LocalBroker(kind="mosquitto", extra=extra) as broker:
        rt, ok = connect(
            MqttConfig(host="localhost", port=broker.port, tls=TlsConfig(enabled=True, ca_file=tmp_path / "other.pem")),
            wait=2,
        )
        rt.stop()
        assert not ok


def test_username_and_password(tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "printer", "s3cret"], check=True, capture_output=True)
    pw.chmod(0o600)
    with LocalBroker(kind="mosquitto", extra=["allow_anonymous false", f"password_file {pw}"]) as broker:
        rt, ok = connect(MqttConfig(host=broker.host, port=broker.port, username="printer", password="s3cret"))  # type: ignore[arg-type]
        rt.stop()
        assert ok, broker.log_tail()
        rt, ok = connect(MqttConfig(host=broker.host, port=broker.port, username="printer", password="wrong"), wait=2)  # type: ignore[arg-type]
        rt.stop()
        assert not ok
        rt, ok = connect(MqttConfig(host=broker.host, port=broker.port), wait=2)
        rt.stop()
        assert not ok
