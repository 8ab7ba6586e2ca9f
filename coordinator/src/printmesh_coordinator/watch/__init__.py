"""Print watch: per-layer verdicts from the grid captures (numpy and OpenCV only, no cloud, no GPU).

``Watcher.judge`` compares each captured layer's images with the same grid positions at the
earlier captured layers and returns a ``Verdict``; the coordinator runs it after the release.
"""

from printmesh_coordinator.watch.detector import GrowthHint, ImageKey, Watcher
from printmesh_coordinator.watch.verdict import PROBLEMS, Kind, Region, Verdict

__all__ = ["PROBLEMS", "GrowthHint", "ImageKey", "Kind", "Region", "Verdict", "Watcher"]
