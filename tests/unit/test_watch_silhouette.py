"""The print watch's G-code silhouette: the projection matches the camera's, growth stays inside it,
a shift the comparison alone misses sticks out of it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from virtual_camera_support import SAMPLE, virtual

from octoprint_printmesh.layers.outline import scan_outlines
from octoprint_printmesh.layers.scanner import scan_file
from printmesh_camera.sources.render import VirtualRenderer
from printmesh_camera.sources.scene import Projector, head_pose
from printmesh_camera.sources.toolpath import parse_file
from printmesh_coordinator.watch import GrowthHint, Watcher
from printmesh_coordinator.watch.frames import decode, prepare
from printmesh_coordinator.watch.silhouette import (
    Pinhole,
    clear_rings,
    expected,
    fitted,
    flags,
    moved,
    new_outside,
    outside,
    placed,
    projected,
)
from printmesh_coordinator.watch_scene import CameraModel, Scene, outlines_of

SIZE = (960, 540)
POINTS = [(70.0, 70.0), (100.0, 100.0), (130.0, 130.0)]
QUIET = {"noise": 0, "jitter": 0, "drift": 0}
UP = {"noise": 9.0, "drift": 0.25, "drift_period": 90.0, "jitter": 3.0, "jpeg_quality": 60}


@pytest.fixture(scope="module")
def box():
    return parse_file(SAMPLE)


@pytest.fixture(scope="module")
def outlines():
    with open(SAMPLE, "rb") as f:
        return outlines_of(scan_outlines(f, scan_file(SAMPLE).table))


def holds(box, outlines, faults=(), realism=None, scene=True):
    """(layer, images, hint) per hold of a job, the hint with the scene the coordinator would build."""
    config = virtual(mount="head", seed=3, faults=list(faults), realism=realism or QUIET)
    renderer = VirtualRenderer(config, box, SIZE)
    camera = {"bed": CameraModel(tuple(config.head.offset), config.head.pitch, config.fov)}
    frame = 0
    for index, layer in enumerate(range(5, box.count + 1, 5)):
        z = renderer.height_of(layer - 1) + 5
        images, heads = {}, {}
        for point, (x, y) in enumerate(POINTS):
            frame += 1
            images[("bed", point)] = renderer.frame(layer - 1, (x, y, z), frame, index * 47.0 + point)
            heads[("bed", point)] = (x, y, z)
        yield layer, images, GrowthHint(scene=Scene(outlines[: layer - 1], heads, camera) if scene else None)


def verdicts(box, outlines, **kwargs):
    watcher = Watcher()
    return {layer: watcher.judge(layer, images, hint) for layer, images, hint in holds(box, outlines, **kwargs)}


@pytest.mark.parametrize(
    ("offset", "pitch", "fov"), [((0, -55, 45), 45, 90), ((10, -30, 20), 60, 70), ((0, 0, 40), 89, 100)]
)
def test_the_projection_is_the_virtual_cameras(offset, pitch, fov):
    head = (100.0, 90.0, 7.0)
    camera = Projector(head_pose(head, offset, pitch, fov, SIZE))
    ours = Pinhole(CameraModel(offset, pitch, fov), head, SIZE)
    points = np.random.default_rng(1).uniform([60, 60, 0], [140, 140, 10], (200, 3))
    (a, da), (b, db) = camera.project(points.astype(np.float32)), ours.project(points)
    assert np.abs(a - b).max() < 0.01 and np.abs(da - db).max() < 0.001


@pytest.mark.parametrize("realism", [QUIET, UP], ids=["quiet", "realism-up"])
def test_a_clean_print_stays_inside_its_silhouette(box, outlines, realism):
    for layer, images, hint in holds(box, outlines, realism=realism):
        for key, image in images.items():
            small, full = decode(image)
            now = prepare(small, full)
            silhouette = expected(hint.scene, key, full, (now.part.shape[1], now.part.shape[0]))
            assert silhouette is not None and silhouette.any()
            assert np.count_nonzero(outside(now.part, silhouette)) <= 3, (layer, key)
            rings = clear_rings(*projected(hint.scene, key, full, (now.part.shape[1], now.part.shape[0])))
            assert np.count_nonzero(outside(now.part, silhouette, rings)) <= 3, (layer, key)
    assert {v.verdict for v in verdicts(box, outlines, realism=realism).values()} == {"ok"}


def test_the_skirt_places_the_silhouette_when_the_camera_jitters_beyond_the_search(box, outlines):
    """A 9-pixel jolt (3 small pixels; the realism knobs' jitter reaches it at 3 sigma) left the part
    outside a silhouette searched 1 pixel each way; the skirt on the bed says where the image went."""
    checked, helped = 0, 0
    for layer, images, hint in holds(box, outlines):
        for key, image in images.items():
            jolt = np.array([[1, 0, 0], [0, 1, 9]], np.float32)
            small, full = decode(cv2.warpAffine(image, jolt, SIZE, borderMode=cv2.BORDER_REPLICATE))
            now = prepare(small, full)
            shape = (now.part.shape[1], now.part.shape[0])
            silhouette = expected(hint.scene, key, full, shape)
            rings = clear_rings(*projected(hint.scene, key, full, shape))
            if rings is None:  # the skirt hidden behind the part from this point
                continue
            out, move = fitted(now.part, silhouette, rings)
            assert move[1] >= 2, (layer, key)  # beyond the search alone (1): the rings placed it
            assert np.count_nonzero(out) <= 3, (layer, key)
            helped += np.count_nonzero(outside(now.part, silhouette)) > 30  # what the rings are for
            checked += 1
    assert checked >= 12 and helped >= 6, (checked, helped)


def test_a_shift_the_comparison_misses_is_flagged_by_the_silhouette_and_never_before(box, outlines):
    fault = [{"kind": "shift", "layer": 6, "seed": 7}]  # layers 7.. moved: the hold of 10 is the first to show it
    without = verdicts(box, outlines, faults=fault, scene=False)
    assert without[10].verdict == "ok"  # what this check is for
    out = verdicts(box, outlines, faults=fault)
    assert out[5].verdict == "ok"
    assert out[10].verdict == "shift" and out[10].problem, out[10]
    assert "G-code" in out[10].reason and out[10].region and out[10].flagged


def test_without_the_cameras_geometry_or_outlines_the_watch_works_as_before(box, outlines):
    for _layer, _images, hint in holds(box, outlines):
        empty = Scene((), hint.scene.heads, hint.scene.cameras)
        assert expected(empty, ("bed", 0), SIZE, (320, 180)) is None
        assert expected(Scene(hint.scene.outlines), ("bed", 0), SIZE, (320, 180)) is None
        break


def test_a_layer_across_the_cameras_plane_gives_no_silhouette_and_one_behind_it_is_left_out(outlines):
    camera = {"bed": CameraModel((0.0, 0.0, 40.0), 10.0, 90.0)}  # looking along +y, nearly level
    # head south of the part: all of it in front; north of it: all behind; over it: across the plane
    shape = (320, 180)
    front = expected(Scene(outlines[:10], {("bed", 0): (100.0, 60.0, 5.0)}, camera), ("bed", 0), SIZE, shape)
    behind = expected(Scene(outlines[:10], {("bed", 0): (100.0, 160.0, 5.0)}, camera), ("bed", 0), SIZE, shape)
    across = expected(Scene(outlines[:10], {("bed", 0): (100.0, 100.0, 5.0)}, camera), ("bed", 0), SIZE, shape)
    assert front is not None and front.any()
    assert behind is not None and not behind.any()
    assert across is None


def test_only_new_outside_pixels_count_and_one_image_or_several_flag():
    before = np.zeros((20, 20), np.uint8)
    before[2:6, 2:6] = 255  # a clip on the bed, outside from the start
    now = before.copy()
    now[12:15, 12:15] = 255
    assert np.count_nonzero(new_outside(now, before)) == 9
    assert np.count_nonzero(new_outside(now, None)) == np.count_nonzero(now)
    assert flags({("a", 0): 30, ("a", 1): 0}) == [("a", 0)]
    assert flags({("a", 0): 12, ("a", 1): 13}) == [("a", 1), ("a", 0)]
    assert flags({("a", 0): 12, ("a", 1): 11}) == []


def test_the_rings_are_never_laid_on_the_parts_own_wall():
    """A skirt close to a wall, seen at a grazing angle, is thinner than the opening that cleans the part
    mask: it is missing from the mask, and the rings moved 2 rows up met the wall instead (dev 1114,
    layer 40: the silhouette placed 2 px off, 169 px of a clean wall "outside")."""
    body = np.zeros((60, 80), np.uint8)
    cv2.ellipse(body, (40, 25), (20, 10), 0, 0, 360, 255, -1)
    ring = np.zeros_like(body)
    cv2.ellipse(ring, (40, 25), (25, 15), 0, 20, 160, 255, 1)  # the skirt's front, clear of the body
    rings = clear_rings(body, ring)
    assert rings is not None
    wall = cv2.dilate(body, np.ones((5, 5), np.uint8))  # the part as seen: a little beyond its projection
    assert cv2.countNonZero(cv2.bitwise_and(wall, moved(rings.mask, 0, -2))) >= 8  # what the rings would find
    assert placed(wall, rings) == (0, 0)
    skirt = cv2.bitwise_or(wall, moved(ring, 1, 2))  # the skirt in view, where the jitter put it
    assert placed(skirt, rings) == (1, 2)


def test_the_parts_edge_rising_inside_the_silhouette_is_growth():
    """Development job 1548 (the box, realism knobs up, clean), grid point 0: between layers 5 and 10
    the top's back edge rose 3 small pixels in the image, past the comparison's growth region (2 up),
    which read it as a shift (111 px of new part). The G-code's silhouette puts the part there."""
    config = virtual(mount="head", seed=1548, realism=UP)
    box = parse_file(SAMPLE)
    with open(SAMPLE, "rb") as f:
        lines = outlines_of(scan_outlines(f, scan_file(SAMPLE).table))
    renderer = VirtualRenderer(config, box, (1280, 720))
    camera = {"bed": CameraModel(tuple(config.head.offset), config.head.pitch, config.fov)}
    alone, placed_by_scene, previous = Watcher(), Watcher(), None
    out = {}
    for index, (layer, frame) in enumerate(((5, 1), (10, 10))):
        z = renderer.height_of(layer - 1)
        head = (70.0, 70.0, z + 5.0)  # grid point 0 of bench/watch_jobs.py
        images = {("bed", 0): renderer.frame(layer - 1, head, frame, index * 47.0)}
        scene = Scene(lines[: layer - 1], {("bed", 0): head}, camera)
        with_scene = GrowthHint(z=z, previous_z=previous, scene=scene)
        out[layer] = (alone.judge(layer, images, GrowthHint(z=z, previous_z=previous)),
                      placed_by_scene.judge(layer, images, with_scene))  # fmt: skip
        previous = z
    assert out[10][0].verdict == "shift", out[10][0]  # what the silhouette is for here
    assert out[10][1].verdict == "ok", out[10][1]


def test_each_verdict_says_how_well_the_silhouette_overlaps_the_part(box, outlines):
    """The overlap tells a camera geometry measured right from one 5 mm and 5 degrees off."""
    right, wrong = Watcher(), Watcher()
    off = {"bed": CameraModel((0.0, -50.0, 50.0), 40.0, 84.0)}
    for layer, images, hint in holds(box, outlines, realism=UP):
        good = right.judge(layer, images, hint)
        assert hint.scene is not None
        bad = wrong.judge(layer, images, GrowthHint(scene=Scene(hint.scene.outlines, hint.scene.heads, off)))
        assert good.agreement is not None and bad.agreement is not None
        assert good.agreement > 0.6 and bad.agreement < 0.35, (layer, good.agreement, bad.agreement)
    assert Watcher().judge(5, images, GrowthHint()).agreement is None  # no scene, no silhouette
