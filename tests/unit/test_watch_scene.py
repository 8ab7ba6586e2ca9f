"""What the coordinator hands the print watch for its G-code silhouette: the bridge's outlines of the
layers printed before the hold, each image's head position, each camera's geometry."""

from __future__ import annotations

from typing import Any

import pytest
from coordinator_support import printer_config
from test_watch_wiring import FakeLink, local_storage
from watch_support import metadata

from printmesh_coordinator.config import WatchConfig
from printmesh_coordinator.watch_rules import Growth
from printmesh_coordinator.watch_scene import CameraModel
from printmesh_coordinator.watch_shell import WatchShell
from printmesh_coordinator.watch_worker import Layer, scene_of
from printmesh_core.models.camera import CameraGeometry
from printmesh_core.models.coordinator import XY
from printmesh_core.models.layers import LayerOutline, LayerOutlines
from printmesh_core.topics import Topics

GEOMETRY = CameraGeometry(offset=(0, -55, 45), pitch=45, fov=90)


def outlines(path: str = "cube.gcode", layers: int = 30) -> LayerOutlines:
    square = [(90.0, 90.0), (110.0, 90.0), (110.0, 110.0), (90.0, 110.0)]
    rows = [LayerOutline(layer=n, z=round(0.2 * n, 3), height=0.2, hulls=[square]) for n in range(layers, 0, -1)]
    return LayerOutlines(path=path, file_size=1, outlines=rows)


def held(geometry: CameraGeometry | None = GEOMETRY, outlines_: LayerOutlines | None = None) -> Layer:
    md = metadata(layer=15, points=3)
    images = [
        i.model_copy(update={"geometry": geometry, "position": XY(x=70 + 30 * i.index, y=100)}) for i in md.images
    ]
    md = md.model_copy(update={"images": images})
    return Layer("octo", WatchConfig(), md, Growth(15, 3.0, 10, 2.0), outlines_)


def test_the_scene_has_the_layers_printed_before_the_hold_and_where_each_image_was_taken() -> None:
    scene = scene_of(held(outlines_=outlines()))
    assert scene is not None
    assert len(scene.outlines) == 14  # the hold of layer 15 comes before its first line
    assert [o.z for o in scene.outlines] == pytest.approx([0.2 * n for n in range(1, 15)])
    assert scene.outlines[0].hulls == (((90.0, 90.0), (110.0, 90.0), (110.0, 110.0), (90.0, 110.0)),)
    assert scene.heads == {
        ("bed", 0): (70.0, 100.0, 5.0),
        ("bed", 1): (100.0, 100.0, 5.0),
        ("bed", 2): (130.0, 100.0, 5.0),
    }
    assert scene.cameras == {"bed": CameraModel((0.0, -55.0, 45.0), 45.0, 90.0)}


def test_no_scene_without_outlines_or_without_a_cameras_geometry() -> None:
    assert scene_of(held(outlines_=None)) is None
    assert scene_of(held(geometry=None, outlines_=outlines())) is None


def test_the_shell_passes_the_printers_outlines_only_when_they_are_of_the_printed_file(tmp_path: Any) -> None:
    link = FakeLink()
    me = Topics("printmesh", "coord").component("coordinator")
    shell = WatchShell([printer_config()], local_storage(tmp_path), link, me, lambda t, p: None, lambda p, j: None,  # type: ignore[arg-type]
                       lambda p, j: None, "s1", process=False)  # fmt: skip
    assert shell.worker is not None
    shell.worker.close(1)
    submitted: list[Layer] = []
    shell.worker = type("Worker", (), {"submit": staticmethod(submitted.append)})()  # type: ignore[assignment]
    link.outlines["octo"] = outlines(path="cube.gcode")
    shell.layer_done("octo", metadata(layer=10))
    link.outlines["octo"] = outlines(path="another.gcode")  # the retained message of the file printed before
    shell.layer_done("octo", metadata(layer=15))
    assert [s.outlines is not None for s in submitted] == [True, False]
