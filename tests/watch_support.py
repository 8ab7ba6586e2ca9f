"""Captured layers for the print watch's tests: metadata as the coordinator writes it, and its files."""

from __future__ import annotations

from printmesh_coordinator.store import Store
from printmesh_core.models.coordinator import XY, CapturedImage, GridSettings, HoldTimings, LayerCapture


def metadata(folder: str = "octo/job1", layer: int = 15, points: int = 2) -> LayerCapture:
    images = [
        CapturedImage(path=f"{folder}/layer_{layer:04d}_pos_{i:02d}_20260101_000000.jpg", position=XY(x=0, y=0),
                      z=5, index=i, camera="bed", camera_node="cam", capture_id=f"c{i}", sha256="0" * 64, size=4,
                      timestamp=1.0)
        for i in range(points)
    ]  # fmt: skip
    settings = GridSettings(grid_spacing=20, grid_center=XY(x=100, y=100), grid_size=1, points=points,
                            z_clearance=5, settle=0, cameras=["bed"], return_to_origin=True)  # fmt: skip
    timings = HoldTimings(hold_duration=1, waiting_for_moves=0, settle=0, capture=0, store=0, release=0, overhead=0)
    return LayerCapture(layer=layer, z_height=3.0, timestamp=100.0 + layer, gcode_file="cube.gcode",
                        print_start_time=50.0, printer="octo", job="job1", hold_id=layer, coordinator="coord",
                        complete=True, images=images, settings=settings, failures=[], timings=timings, release=None,
                        metadata_path=f"{folder}/layer_{layer:04d}_metadata_20260101_000000.json")  # fmt: skip


def write_layer(store: Store, md: LayerCapture) -> None:
    for image in md.images:
        store.write(image.path, b"\xff\xd8" + image.path.encode() + b"\xff\xd9")
    assert md.metadata_path is not None
    store.write(md.metadata_path, md.model_dump_json().encode())
