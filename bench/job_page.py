"""The job page's costs, side by side in one run: timelapse encoding and writing the page.

* **timelapse, per 100 frames, 1280x720**: ``timelapse.encode`` (read JPEG, VP8 WebM) against
  the floor of only decoding the same 100 JPEGs; VP9 on a few frames, scaled to 100, to show
  why VP8 was chosen.
* **job page, 30 layers x 9 positions** (1280x720 images): the full build (270 thumbnails and
  the page), the per-layer incremental update (9 new thumbnails and the page, as the
  coordinator's worker does after each stored layer), the page alone (nothing new), and the
  final build with its 9 timelapse videos. Ratios against the floor of decoding the 9 new
  images.
* **the decision loop**: how late a loop thread wakes from a 1 ms ``queue.get`` timeout
  while the worker builds the final page, against the same loop with the worker idle, and
  the cost on the loop of queueing an update. The page never runs on the loop: this is the
  only way it can reach a hold (GIL and CPU sharing).

    .venv/bin/python bench/job_page.py [--repeat 3] [--frames 100] [--keep DIR]

Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from job_folders import make_job  # noqa: E402

from printmesh_coordinator import page, timelapse  # noqa: E402
from printmesh_coordinator.page_worker import PageWorker  # noqa: E402

SIZE = (1280, 720)


def frames(folder: Path, count: int) -> list[Path]:
    """A growing part on a textured bed with sensor noise: about what a camera gives."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    bed = np.dstack([(x // 40 + y // 40) % 2 * 30 + 60] * 3).astype(np.uint8)
    out = []
    for i in range(count):
        img = bed.copy()
        top = 620 - int(400 * i / max(1, count - 1))
        cv2.rectangle(img, (480, top), (800, 620), (40, 140, 230), -1)
        img = cv2.add(img, rng.integers(0, 8, img.shape, dtype=np.uint8))
        path = folder / f"f{i:04d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        out.append(path)
    return out


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def decode(paths: list[Path]) -> None:
    for p in paths:
        cv2.imread(str(p))


def loop_lateness(seconds: float, during: Callable[[], object] | None) -> list[float]:
    """Wake-up lateness (ms) of a loop waiting 1 ms on a queue, optionally while ``during`` runs."""
    inbox: queue.SimpleQueue[int] = queue.SimpleQueue()
    late: list[float] = []
    done = threading.Event()
    if during is not None:
        threading.Thread(target=lambda: (during(), done.set()), daemon=True).start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (during is not None and done.is_set()):
        t = time.perf_counter()
        with contextlib.suppress(queue.Empty):
            inbox.get(timeout=0.001)
        late.append((time.perf_counter() - t - 0.001) * 1000)
    return late


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--keep", type=Path, help="keep the synthetic job here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-page-"))
    try:
        paths = frames(work, args.frames)
        per100 = 100 / args.frames
        t_decode = timed(lambda: decode(paths), args.repeat) * per100
        t_vp8 = timed(lambda: timelapse.encode(paths, work / "vp8.webm"), args.repeat) * per100
        few = paths[:: max(1, len(paths) // 8)][:8]
        timelapse.FOURCC = "VP90"
        t_vp9 = timed(lambda: timelapse.encode(few, work / "vp9.webm"), 1) * 100 / len(few)
        timelapse.FOURCC = "VP80"
        print(f"timelapse, per 100 frames {SIZE[0]}x{SIZE[1]} ({args.frames} measured, median of {args.repeat})")
        print(f"  decode the JPEGs only (floor)   {t_decode:7.2f} s")
        print(f"  VP8 WebM (timelapse.encode)     {t_vp8:7.2f} s   {t_vp8 / t_decode:5.1f}x floor")
        print(f"  VP9 WebM ({len(few)} frames, scaled)    {t_vp9:7.2f} s   {t_vp9 / t_decode:5.1f}x floor")

        layers = list(range(1, 31))
        job = make_job(work / "caps", layers, points=9, size=SIZE, summary=False)
        last = sorted(job.glob("layer_0030_pos_*.jpg"))
        t_floor = timed(lambda: decode(last), args.repeat)
        t_full = timed(lambda: page.build(job, force=True), args.repeat)

        def incremental() -> None:
            for thumb in (job / "page" / "thumbs").glob("layer_0030_*"):
                thumb.unlink()
            page.build(job)

        t_inc = timed(incremental, args.repeat)
        t_html = timed(lambda: page.build(job), args.repeat)
        t_final = timed(lambda: page.build(job, final=True), 1)
        print(f"job page, 30 layers x 9 positions, {SIZE[0]}x{SIZE[1]} images (median of {args.repeat})")
        print(f"  decode 9 images (floor)         {t_floor * 1000:7.1f} ms")
        print(f"  per-layer update (9 thumbs+page){t_inc * 1000:7.1f} ms   {t_inc / t_floor:5.1f}x floor")
        print(f"  page only, nothing new          {t_html * 1000:7.1f} ms   {t_html / t_floor:5.1f}x floor")
        print(f"  full build (270 thumbs+page)    {t_full * 1000:7.1f} ms   {t_full / t_floor:5.1f}x floor"
              f"   {t_full / t_inc:5.1f}x the update")  # fmt: skip
        print(f"  final build (+9 videos x 30)    {t_final:7.2f} s")
        size = (job / "index.html").stat().st_size / 1024
        thumbs = sum(p.stat().st_size for p in (job / "page" / "thumbs").glob("*.jpg")) / 1024
        print(f"  index.html {size:.0f} KiB, 270 thumbnails {thumbs:.0f} KiB")

        worker = PageWorker()
        t0 = time.perf_counter()
        for _ in range(1000):
            worker.update(job)
        t_queue = (time.perf_counter() - t0) / 1000 * 1e6
        worker.idle(120)
        worker.close(5)
        idle = loop_lateness(5, None)

        def final_on_worker() -> None:  # as in the coordinator: the worker thread, at its lower priority
            w = PageWorker()
            w.finish(job)
            w.idle(300)
            w.close(5)

        def updates_on_worker() -> None:  # ten per-layer updates, back to back
            w = PageWorker()
            for _ in range(10):
                for thumb in (job / "page" / "thumbs").glob("layer_0030_*"):
                    thumb.unlink()
                w.update(job)
                w.idle(60)
            w.close(5)

        updating = loop_lateness(60, updates_on_worker)
        busy = loop_lateness(120, final_on_worker)
        print("decision loop (1 ms queue wait) while the worker builds the final page")
        print(f"  queueing an update on the loop  {t_queue:7.1f} us")
        floor99 = max(pct(idle, 0.99), 1e-3)
        for label, late in (("worker idle", idle), ("10 updates", updating), ("final build", busy)):
            ratio = "" if late is idle else f"  (p99 {pct(late, 0.99) / floor99:.1f}x idle)"
            print(f"  wake-up lateness, {label:<13} p50 {pct(late, 0.5):6.3f} ms  p99 {pct(late, 0.99):6.3f} ms"
                  f"  max {max(late):6.1f} ms{ratio}")  # fmt: skip
        if args.keep is not None:
            shutil.copytree(job, args.keep, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
