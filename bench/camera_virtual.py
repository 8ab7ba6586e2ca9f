"""Rendering one 1280x720 frame of the virtual camera, side by side with the synthetic source.

Goals (issue 9): the 30-layer sample box in at most 50 ms, a 200-layer part in at most
150 ms, on this 2-core machine. The 200-layer part is made by bench/make_tall_part.py.
Cases, each a full frame as the source delivers it (part, jitter, drift, noise):

* ``synthetic``: SyntheticSource.render, the baseline every ratio is against;
* ``cold``: a new pose every frame (the head camera at each grid point of a capture): the
  backdrop and every layer drawn from scratch, the worst case;
* ``next layer``: pose unchanged, one more layer each frame (a fixed camera following a
  print): the cached part plus one layer;
* ``same layer``: pose and layer unchanged (previews between layers): cache hit;
* ``cold + JPEG 60``: ``cold`` with the JPEG artefact knob on.

The toolpath parse and per-file geometry happen once per file in a background thread and
are reported separately. Wall times are what a capture waits; CPU times (this process) of
the same frames are shown beside them because the machine is shared and wall times swing
with other load. Prints figures and ratios; asserts nothing.

    .venv/bin/python bench/camera_virtual.py [--frames 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from make_tall_part import generate

from printmesh_camera.config import SyntheticSourceConfig
from printmesh_camera.sources.base import SizeHint
from printmesh_camera.sources.render import VirtualRenderer
from printmesh_camera.sources.synthetic import SyntheticSource
from printmesh_camera.sources.toolpath import parse_file
from printmesh_camera.virtual_config import VirtualSourceConfig

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1280, 720)


CPU: dict[int, list[float]] = {}  # id(wall list) -> CPU ms per frame, same frames


def timed(fn: Callable[[int], object], frames: int) -> list[float]:
    """Wall ms per frame; the process CPU ms of the same frames go to CPU (less hit by other load)."""
    fn(0)  # warm-up (imports, first allocation)
    out, cpu = [], []
    for i in range(1, frames + 1):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    CPU[id(out)] = cpu
    return out


def config(mount: str, jpeg: int | None = None) -> VirtualSourceConfig:
    return VirtualSourceConfig.model_validate(
        {"type": "virtual", "printer": "bench", "files": "/tmp", "mount": mount, "realism": {"jpeg_quality": jpeg}}
    )


def cases(path: Path, layers: int, frames: int) -> dict[str, list[float]]:
    start = time.perf_counter()
    toolpath = parse_file(path)
    parsed = time.perf_counter() - start
    renderer = VirtualRenderer(config("head"), toolpath, SIZE)
    print(f"  {path.name}: {toolpath.count} layers, parse {parsed * 1000:.0f} ms, "
          f"geometry + noise bank {(time.perf_counter() - start - parsed) * 1000:.0f} ms (once per file)")  # fmt: skip
    cx, cy = (float(v) for v in renderer.geometry.centre)
    top = renderer.height_of(layers)

    def cold(i: int, r: VirtualRenderer = renderer) -> None:  # a grid point per frame
        r.frame(layers, (cx + (i % 3 - 1) * 30 + i * 0.01, cy + (i // 3 % 3 - 1) * 30, top + 5), i)

    jpeg = VirtualRenderer(config("head", 60), toolpath, SIZE)
    fixed = VirtualRenderer(config("fixed"), toolpath, SIZE)
    first = max(1, layers - frames - 1)
    fixed.frame(first)
    return {
        "cold": timed(cold, frames),
        "next layer": timed(lambda i: fixed.frame(first + i, None, i), frames),
        "same layer": timed(lambda i: fixed.frame(layers, None, i), frames),
        "cold + JPEG 60": timed(lambda i: cold(i, jpeg), frames),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    print(f"# camera_virtual: {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"{SIZE[0]}x{SIZE[1]}, {args.frames} frames per case; ms per frame")  # fmt: skip
    synthetic = SyntheticSource(SyntheticSourceConfig(type="synthetic", fps=0), SizeHint(*SIZE))
    synthetic.open()
    base = timed(lambda i: synthetic.render(i, time.time(), f"layer {i}"), args.frames)
    base_p50 = statistics.median(base)
    with tempfile.TemporaryDirectory() as tmp:
        tall = Path(tmp, "tall-200.gcode")
        tall.write_text(generate(200))
        parts = [("sample box, layer 30", ROOT / "examples" / "sample-box.gcode", 30, 50.0),
                 ("200-layer part, layer 200", tall, 200, 150.0)]  # fmt: skip
        print(f"{'case':<44}{'p50':>8}{'p90':>8}{'max':>8}{'cpu p50':>9}{'x synthetic p50':>17}{'goal':>8}")
        print(f"{'synthetic 1280x720':<44}{base_p50:8.1f}{percentile(base, 90):8.1f}{max(base):8.1f}"
              f"{statistics.median(CPU[id(base)]):9.1f}{1.0:17.2f}")  # fmt: skip
        for title, path, layers, goal in parts:
            for name, times in cases(path, layers, args.frames).items():
                p50 = statistics.median(times)
                ok = "ok" if p50 <= goal else "MISS"
                print(f"{title + ': ' + name:<44}{p50:8.1f}{percentile(times, 90):8.1f}{max(times):8.1f}"
                      f"{statistics.median(CPU[id(times)]):9.1f}{p50 / base_p50:17.2f}{goal:6.0f} {ok}")  # fmt: skip
    print(f"# load after: {os.getloadavg()[0]:.2f}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
