"""Starting a local mosquitto on a loopback port.

Used by ``printmesh up`` (when no broker is configured), by the test suite's fixture and by
the benchmarks, so all three start brokers the same way. Without ``config_file`` it has no
accounts, so it listens on loopback only: a private broker for one run, never the deployed
one (that one is ``printmesh broker-config``'s, docs/security.md). There is no fallback broker: the
iotcore broker from PyPI (rumqttd) closed any connection that published more than 20480
bytes, so it could not carry a camera capture (see the README, "Broker").
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal

MOSQUITTO_MISSING = "mosquitto is not installed: sudo apt-get install mosquitto (or brew install mosquitto)"


class BrokerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


class LocalBroker:
    """A broker child process on a loopback port; restartable on the same port."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        kind: Literal["mosquitto"] = "mosquitto",
        extra: list[str] | None = None,
        config_file: Path | None = None,
        persistence: bool = False,
    ) -> None:
        self.host = host
        self.persistence = persistence  # retained messages (the wills sent at shutdown too) survive a restart
        self.extra = extra or []  # more mosquitto.conf lines for the listener: TLS, password_file
        # a whole mosquitto.conf (e.g. printmesh broker-config's) instead of ours, plus
        # ``extra``; it must listen on ``port`` at ``host``, where start() waits for it
        self.config_file = config_file
        self.port = port or free_port(host)
        self.kind = kind
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="printmesh-broker-"))
        self.log_path = self._dir / "broker.log"

    def _command(self) -> list[str]:
        exe = mosquitto_path()
        if exe is None:
            raise BrokerError(MOSQUITTO_MISSING)
        conf = self._dir / "mosquitto.conf"
        if self.config_file is not None:
            lines = [*self.config_file.read_text().splitlines(), *self.extra]
            lines += ["user root"] if os.geteuid() == 0 else []
            conf.write_text("\n".join(lines) + "\n")
            return [exe, "-c", str(conf)]
        # set_tcp_nodelay: without it every QoS 1 round trip waits ~40 ms on delayed acks
        keep = ["persistence true", f"persistence_location {self._dir}/"] if self.persistence else ["persistence false"]
        lines = [f"listener {self.port} {self.host}", *keep, "set_tcp_nodelay true", *self.extra]
        if not any(line.startswith("allow_anonymous") for line in self.extra):
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        return [exe, "-c", str(conf)]

    def start(self, timeout: float = 10.0) -> LocalBroker:
        with self.log_path.open("ab") as logf:
            self._proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(f"{self.kind} exited with {self._proc.returncode}: {self.log_tail()}")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"{self.kind} did not listen on {self.host}:{self.port} within {timeout}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # wait until the port is really free, so a restart can bind it again
        deadline = time.monotonic() + 5
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 10) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> LocalBroker:
        return self.start()

    def close(self) -> None:
        """Stop and remove the temporary config and log folder."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.close()
