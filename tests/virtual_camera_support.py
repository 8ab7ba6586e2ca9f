"""Helpers for the virtual camera tests: configs and how much of a frame is printed part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from printmesh_camera.follow import PrinterFeeds, PrinterFollower
from printmesh_camera.virtual_config import VirtualSourceConfig

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample-box.gcode"


def virtual(files: Path | str | None = "/tmp", **extra: Any) -> VirtualSourceConfig:
    folder = None if files is None else str(files)
    return VirtualSourceConfig.model_validate({"type": "virtual", "printer": "demo", "files": folder, **extra})


def part_mask(image: np.ndarray) -> np.ndarray:
    """Pixels of the (orange) filament: orange, saturated, not dark; the bed and enclosure are grey."""
    hsv = cv2.cvtColor(cv2.medianBlur(image, 3), cv2.COLOR_BGR2HSV)  # median: sensor noise and JPEG ringing
    hue = hsv[:, :, 0]
    return (hue >= 4) & (hue <= 28) & (hsv[:, :, 1] > 80) & (hsv[:, :, 2] > 40)


def part_area(image: np.ndarray) -> int:
    return int(part_mask(image).sum())


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    assert len(xs), "no part pixels"
    return float(xs.mean()), float(ys.mean())


def feeds_of(follower: PrinterFollower) -> PrinterFeeds:
    """What the agent hands a virtual source: the follower of its printer, fed by the test instead."""
    feeds = PrinterFeeds()
    feeds._followers[follower.node] = follower
    return feeds
