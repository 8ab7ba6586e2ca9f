"""One frame of the virtual camera from (toolpath, layers printed, head position, frame number).

A plain object without threads or MQTT, so tests and the benchmark call it directly. What
is costly is cached: the backdrop per pose, the part per (pose, fault placement) up to the
last layer drawn; what changes every frame (jitter, drift, noise, JPEG) is 2D and cheap.
"""

from __future__ import annotations

import numpy as np

from printmesh_camera.sources.base import Image
from printmesh_camera.sources.faults import blacked_out, draw_strands, placement, strands
from printmesh_camera.sources.part import Geometry, PartCache, draw_layers
from printmesh_camera.sources.realism import Realism
from printmesh_camera.sources.scene import Pose, Projector, backdrop, head_pose
from printmesh_camera.sources.toolpath import Toolpath
from printmesh_camera.virtual_config import VirtualSourceConfig

Point = tuple[float, float, float]


class VirtualRenderer:
    def __init__(
        self, config: VirtualSourceConfig, toolpath: Toolpath, size: tuple[int, int], realism: Realism | None = None
    ) -> None:
        self.config = config
        self.size = size
        self.toolpath = toolpath
        self.geometry = Geometry(toolpath)
        light = np.array(config.light, np.float32)
        self.light = light / np.linalg.norm(light)
        r, g, b = config.color
        self.colour = np.array([b, g, r], np.float32)
        self.realism = realism or Realism(config.realism, config.seed, size)
        self._backdrop: tuple[Pose, Image] | None = None
        self._projector: Projector | None = None
        self._part = PartCache()

    @property
    def layer_count(self) -> int:
        return self.geometry.count

    def height_of(self, layers: int) -> float:
        return self.toolpath.layers[layers - 1].z if 0 < layers <= self.geometry.count else 0.0

    def pose(self, layers: int, head: Point | None) -> Pose:
        cfg = self.config
        if cfg.mount == "fixed":
            return Pose(cfg.fixed.position, cfg.fixed.look_at, cfg.fov, *self.size)
        if head is None:  # printing: the nozzle is over the part, at the layer's height
            cx, cy = self.geometry.centre
            head = (float(cx), float(cy), self.height_of(layers))
        return head_pose(head, cfg.head.offset, cfg.head.pitch, cfg.fov, self.size)

    def _scene(self, pose: Pose) -> tuple[Projector, Image]:
        if self._backdrop is None or self._backdrop[0] != pose or self._projector is None:
            self._projector = Projector(pose)
            image = backdrop(self._projector, self.config.bed, float(self.light[2]), self.geometry.footprint)
            self._backdrop = (pose, image)
        return self._projector, self._backdrop[1]

    def part(self, layers: int, head: Point | None = None) -> Image:
        """The noiseless image of layers 1..``layers`` (faults included), from the cache when it can."""
        layers = max(0, min(layers, self.geometry.count))
        pose = self.pose(layers, head)
        projector, base = self._scene(pose)
        place = placement(self.config.faults, self.geometry, layers)

        def draw(image: Image, first: int, last: int) -> None:
            draw_layers(image, self.geometry, projector, self.light, self.colour, first, last, place)

        image = self._part.render((pose, place.key()), layers, base, draw)
        spaghetti = [f for f in self.config.faults if f.kind == "spaghetti" and layers >= f.layer]
        if not spaghetti:
            return image
        image = image.copy()
        for fault in spaghetti:
            lines = strands(fault, self.geometry, self.height_of(fault.layer), layers)
            draw_strands(image, lines, projector, self.colour, fault.seed)
        return image

    def frame(self, layers: int, head: Point | None = None, number: int = 0, elapsed: float = 0.0) -> Image:
        """The frame a camera would deliver: the part, then jitter, drift, noise and JPEG."""
        if blacked_out(self.config.faults, layers):
            return np.zeros((self.size[1], self.size[0], 3), np.uint8)
        return self.realism.apply(self.part(layers, head), number, elapsed)
