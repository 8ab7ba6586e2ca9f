"""The store's cost per layer, side by side in one run: the local disk against an S3 bucket.

A layer is what the coordinator writes for one hold of a 3x3 grid: 9 JPEGs (640x480, the
synthetic camera's size in the end-to-end tests) and then the layer's metadata. Each round
writes one layer to the local store (``store.py``, temporary file and rename, no fsync) and
one to the S3 store (``store_s3.py``, one PUT per object) on a real SeaweedFS server started
here on loopback (``tests/seaweed_support.py``), interleaved so both see the same machine
load. It also times what the decision loop pays with ``store.type: s3``: queueing a write on
the upload thread (``Storage.write``), against the local write the loop makes itself.

    .venv/bin/python bench/store_s3.py [--layers 30]

Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from seaweed_support import ACCESS_KEY, SECRET_KEY, start_seaweed  # noqa: E402

from printmesh_coordinator.config import CoordinatorSection  # noqa: E402
from printmesh_coordinator.messages import Input  # noqa: E402
from printmesh_coordinator.storage import Storage  # noqa: E402
from printmesh_coordinator.store import Store  # noqa: E402
from printmesh_coordinator.store_config import StoreConfig  # noqa: E402
from printmesh_coordinator.store_s3 import S3Store  # noqa: E402


def jpegs(count: int) -> list[bytes]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (9, 9), 0)
        cv2.putText(image, f"P{i:02d}", (40, 240), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 6)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        out.append(data.tobytes())
    return out


def layer(store: Store | S3Store, n: int, images: list[bytes], metadata: bytes) -> float:
    start = time.perf_counter()
    for i, data in enumerate(images):
        store.write(f"bench/job/layer_{n:04d}_pos_{i:02d}_20260101_000000.jpg", data)
    store.write(f"bench/job/layer_{n:04d}_metadata_20260101_000000.json", metadata)
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))
    server = start_seaweed(work / "seaweed")
    try:
        keys = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY}
        config = StoreConfig.model_validate(
            {"type": "s3", "endpoint": server.endpoint, "bucket": server.bucket, "prefix": "bench", **keys}
        )
        local, s3 = Store(work / "captures"), S3Store(config)
        images = jpegs(9)
        metadata = b"{" + b'"x": 1, ' * 600 + b'"end": 0}\n'  # about the size of a 9-image metadata file
        s3.write("bench/warmup.json", b"{}")
        times: dict[str, list[float]] = {"local": [], "s3": []}
        for n in range(args.layers):
            times["local"].append(layer(local, n, images, metadata))
            times["s3"].append(layer(s3, n, images, metadata))
        size = sum(map(len, images)) / 9
        print(f"layer = 9 JPEGs of {size / 1000:.0f} kB + metadata of {len(metadata) / 1000:.1f} kB; "
              f"{args.layers} layers per store, interleaved")  # fmt: skip
        for name, values in times.items():
            ms = [v * 1000 for v in values]
            print(f"{name:6s} per layer: p50 {statistics.median(ms):7.1f} ms  p95 {pct(ms, 0.95):7.1f} ms  "
                  f"max {max(ms):7.1f} ms")  # fmt: skip
        ratio = statistics.median(times["s3"]) / statistics.median(times["local"])
        print(f"s3 / local (p50): {ratio:.1f}x")
        # what the loop pays per write with an S3 store: a queue put
        section = CoordinatorSection(store=config, pages=False)
        done = threading.Event()
        seen: list[Input] = []

        def deliver(printer: str, message: Input) -> None:
            seen.append(message)
            if len(seen) == 10 * args.layers:
                done.set()

        storage = Storage(section, deliver)
        queued = []
        for n in range(args.layers):
            for i, data in enumerate([*images, metadata]):
                start = time.perf_counter()
                storage.write("bench", f"bench/q/layer_{n:04d}_pos_{i:02d}_20260101_000000.jpg", data)
                queued.append((time.perf_counter() - start) * 1e6)
        done.wait(120)
        storage.close(10, 1)
        local_one = [v * 1000 / 10 for v in times["local"]]
        print(f"loop cost per write, s3 store (queued): p50 {statistics.median(queued):.1f} us, "
              f"p99 {pct(queued, 0.99):.1f} us; local store (written by the loop): "
              f"p50 {statistics.median(local_one) * 1000:.0f} us")  # fmt: skip
        print(f"all {len(seen)} queued writes confirmed: {sum(type(m).__name__ == 'Written' for m in seen)} Written")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
