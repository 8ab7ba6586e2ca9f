"""The print watch's test jobs: what bench/watch_eval.py renders, kept apart for size.

A job is a part (the 30-layer sample box or a 60-layer tower from make_tall_part.py), a
camera seed, the realism knobs (default, or ``up``: more noise, drift and jitter, JPEG
artefacts) and at most one seeded fault. Frames are rendered in-process by the virtual
camera's own renderer, exactly as the demo captures them: a head camera at each point of
a 3x3 grid (30 mm spacing around the bed centre, serpentine order), ``z_clearance`` 5 mm
above the part, at holds every 5 layers; during the hold of layer N the part has N - 1
layers (the bridge holds before the layer's first line). Each capture's hint carries what the
coordinator gets in a print: the z of the capture and of the one before, and the scene of the
G-code silhouette (the layer outlines the bridge reads from the file with its own
``scan_outlines``, each image's head position, the virtual camera's geometry).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from make_tall_part import generate

from octoprint_printmesh.layers.outline import scan_outlines
from octoprint_printmesh.layers.scanner import scan_stream
from printmesh_camera.sources.render import VirtualRenderer
from printmesh_camera.sources.toolpath import Toolpath, parse_file, parse_lines
from printmesh_camera.virtual_config import VirtualSourceConfig
from printmesh_coordinator.watch import GrowthHint
from printmesh_coordinator.watch_scene import CameraModel, Outline, Scene, outlines_of

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1280, 720)
EVERY = 5
GRID = [(100.0 + (c - 1) * 30, 100.0 + (r - 1) * 30) for r in range(3) for c in (range(3) if r % 2 == 0 else (2, 1, 0))]
CLEARANCE = 5.0
KINDS = ("spaghetti", "shift", "detach")
# Seed ranges: the development set is tuned on, the evaluation set never is.
DEV_SEEDS = range(1000, 2000)
EVAL_SEEDS = range(9000, 10000)
REALISM_UP = {"noise": 9.0, "drift": 0.25, "drift_period": 90.0, "jitter": 3.0, "jpeg_quality": 60}

Images = dict[tuple[str, int], np.ndarray]


@dataclass(frozen=True)
class Job:
    seed: int
    part: str  # "box" or "tower"
    realism: str  # "default" or "up"
    fault: tuple[str, int, int] | None  # kind, layer, seed

    @property
    def name(self) -> str:
        fault = f"{self.fault[0]}@{self.fault[1]}" if self.fault else "clean"
        return f"{self.seed}:{self.part}:{self.realism}:{fault}"

    def onset(self) -> int | None:
        """The number of printed layers from which the fault shows (the renderer's own rule:
        spaghetti and detach from their layer, a shift moves the layers above its layer)."""
        if self.fault is None:
            return None
        kind, layer, _ = self.fault
        return layer + 1 if kind == "shift" else layer


def gcode(part: str) -> bytes:
    if part == "box":
        return (ROOT / "examples" / "sample-box.gcode").read_bytes()
    return generate(60).encode()


@functools.cache
def toolpath(part: str) -> Toolpath:
    if part == "box":
        return parse_file(ROOT / "examples" / "sample-box.gcode")
    return parse_lines(generate(60).splitlines())


@functools.cache
def outlines(part: str) -> tuple[Outline, ...]:
    """The part's layer outlines as the bridge computes them at upload (``layers/outline.py``)."""
    data = gcode(part)
    table = scan_stream(io.BytesIO(data)).table
    return outlines_of(scan_outlines(io.BytesIO(data), table))


def make_jobs(seeds: range, count: int, up_share: float = 0.3, every: int = EVERY) -> list[Job]:
    """``count`` jobs from the first seeds of ``seeds``: half clean, half with one fault; a share with realism up."""
    out = []
    for i in range(count):
        seed = seeds[i]
        rng = np.random.default_rng(seed)
        part = "tower" if i % 4 in (1, 2) else "box"
        realism = "up" if rng.random() < up_share else "default"
        fault = None
        if i % 2 == 1:
            layers = toolpath(part).count
            kind = KINDS[(i // 2) % len(KINDS)]
            fault = (kind, int(rng.integers(every + 1, layers - every)), int(rng.integers(0, 1000)))
        out.append(Job(seed, part, realism, fault))
    return out


def config(job: Job) -> VirtualSourceConfig:
    faults = [] if job.fault is None else [{"kind": job.fault[0], "layer": job.fault[1], "seed": job.fault[2]}]
    realism = REALISM_UP if job.realism == "up" else {}
    return VirtualSourceConfig.model_validate({"type": "virtual", "printer": "bench", "files": "/tmp", "mount": "head",
                                               "seed": job.seed, "realism": realism, "faults": faults})  # fmt: skip


@dataclass(frozen=True)
class Capture:
    layer: int  # the hold's layer
    printed: int  # layers printed (what the camera sees)
    images: Images
    hint: GrowthHint
    faulty: bool  # the fault shows in these frames


def captures(
    job: Job, size: tuple[int, int] = SIZE, every: int = EVERY, hint: bool = True, scene: bool = True
) -> Iterator[Capture]:
    """The job's holds, every ``every`` layers; ``hint``: pass the z of this and the previous capture;
    ``scene``: and the G-code's outlines with the head's positions and the camera's geometry."""
    path = toolpath(job.part)
    cfg = config(job)
    renderer = VirtualRenderer(cfg, path, size)
    camera = {"bed": CameraModel(tuple(cfg.head.offset), cfg.head.pitch, cfg.fov)}  # type: ignore[arg-type]
    onset = job.onset()
    previous: float | None = None
    frame = 0
    for index, layer in enumerate(range(every, path.count + 1, every)):
        printed = layer - 1
        z = renderer.height_of(printed)
        images: Images = {}
        heads = {("bed", point): (x, y, z + CLEARANCE) for point, (x, y) in enumerate(GRID)}
        for point, (x, y) in enumerate(GRID):
            frame += 1
            elapsed = index * 47.0 + point * 1.3  # captures minutes apart: the drift is anywhere in its cycle
            images[("bed", point)] = renderer.frame(printed, (x, y, z + CLEARANCE), frame, elapsed)
        seen = Scene(outlines(job.part)[:printed], heads, camera) if scene else None
        growth = GrowthHint(z=z, previous_z=previous, scene=seen) if hint else GrowthHint(scene=seen)
        yield Capture(layer, printed, images, growth, onset is not None and printed >= onset)
        previous = z
