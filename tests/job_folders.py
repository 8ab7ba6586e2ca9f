"""Synthetic job folders, as the coordinator writes them, for the job page's tests and benchmark.

Images are real JPEGs written with OpenCV (a part that grows with the layer), metadata
files are real ``LayerCapture`` models, so the page is built from exactly what it reads
in production.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from printmesh_core.models.coordinator import (
    XY,
    CapturedImage,
    CaptureFailure,
    GridSettings,
    HoldTimings,
    JobSummary,
    LayerCapture,
    ReleaseInfo,
    SummaryFailure,
)

START = 1_780_000_000.0


def frame(layer: int, index: int, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    img = np.full((h, w, 3), (40 + 20 * index % 200, 60, 90), np.uint8)
    top = h - 10 - layer * (h - 20) // 40
    cv2.rectangle(img, (w // 4, top), (3 * w // 4, h - 10), (60, 160, 220), -1)
    cv2.putText(img, f"L{layer} P{index}", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
    return img


def make_job(
    root: Path,
    layers: list[int],
    points: int = 9,
    cameras: tuple[str, ...] = ("bed",),
    size: tuple[int, int] = (320, 240),
    printer: str = "octo",
    job: str = "box_20261204_120000",
    gcode_file: str = "box.gcode",
    failed: dict[int, int] | None = None,
    summary: bool = True,
) -> Path:
    """A job folder under ``root`` (the captures_dir); ``failed``: layer -> images taken before a failure."""
    folder = root / printer / job
    folder.mkdir(parents=True, exist_ok=True)
    failed = failed or {}
    all_failures: list[SummaryFailure] = []
    for n, layer in enumerate(layers):
        t0 = START + 60 * (n + 1)
        images: list[CapturedImage] = []
        failures: list[CaptureFailure] = []
        budget = failed.get(layer, points * len(cameras))
        for index in range(points):
            for cam in cameras:
                if len(images) >= budget:
                    break
                ok, data = cv2.imencode(".jpg", frame(layer, index, size), [cv2.IMWRITE_JPEG_QUALITY, 85])
                assert ok
                tag = f"_{cam}" if len(cameras) > 1 else ""
                name = f"layer_{layer:04d}_pos_{index:02d}{tag}_{n:08d}_{index:02d}.jpg"
                (folder / name).write_bytes(data.tobytes())
                images.append(CapturedImage(
                    path=f"{printer}/{job}/{name}", position=XY(x=100, y=100), z=layer * 0.2 + 5, index=index,
                    camera=cam, camera_node="cams", capture_id=f"c{n}-{index}",
                    sha256=hashlib.sha256(data.tobytes()).hexdigest(), size=len(data), timestamp=t0 + index,
                ))  # fmt: skip
        if layer in failed:
            failures.append(CaptureFailure(kind="capture_timeout", message=f"camera <b>bed</b> timed out at {layer}",
                                           at=t0 + 5, point=len(images), camera=cameras[0]))  # fmt: skip
            all_failures += [SummaryFailure(layer=layer, **f.model_dump()) for f in failures]
        md = LayerCapture(
            ts=t0 + 9, layer=layer, z_height=round(layer * 0.2, 3), timestamp=t0, gcode_file=gcode_file,
            print_start_time=START, printer=printer, job=job, hold_id=n + 1, coordinator="coord",
            complete=not failures, images=images,
            settings=GridSettings(grid_spacing=30, grid_center=XY(x=100, y=100), grid_size=3, points=points,
                                  z_clearance=5, settle=0.05, cameras=list(cameras), return_to_origin=True),
            failures=failures,
            timings=HoldTimings(hold_duration=8.0, waiting_for_moves=4.0, settle=0.5, capture=2.0, store=0.1,
                                release=1.0, overhead=0.5),
            release=ReleaseInfo(reason="requested", returned=True, by="coordinator"),
            metadata_path=f"{printer}/{job}/layer_{layer:04d}_metadata_{n:08d}.json",
        )  # fmt: skip
        (folder / f"layer_{layer:04d}_metadata_{n:08d}.json").write_text(md.model_dump_json(indent=2))
    if summary:
        s = JobSummary(
            ts=START + 3600, printer=printer, job=job, gcode_file=gcode_file, print_start_time=START,
            ended_at=START + 3600, outcome="done", layers_captured=layers, layers_held=layers,
            images=sum(1 for _ in folder.glob("layer_*.jpg")), failures=all_failures, total_hold_time=8.0 * len(layers),
            coordinators=["coord"],
        )  # fmt: skip
        (folder / "job_summary.json").write_text(s.model_dump_json(indent=2))
    return folder
