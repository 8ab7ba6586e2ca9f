"""Coordinator config, grid points and bounds, and ``printmesh coordinator --preview``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PRINTMESH, Observer
from coordinator_support import printer_config

from printmesh_coordinator.bounds import DEFAULT_PROFILE, Point, allowed_region, bed_center, check_fit, grid_points
from printmesh_coordinator.config import CoordinatorSettings, GridConfig
from printmesh_core.config import ConfigError, load_settings
from printmesh_core.models.printer import BuildVolume, CustomBox, PrinterProfile


def profile(**volume: Any) -> PrinterProfile:
    return PrinterProfile(name="p", volume=BuildVolume(**{"width": 200, "depth": 200, "height": 200, **volume}))


# ------------------------------------------------------------------ grid
@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_odd_grids_are_centred_serpentines(size):
    points = grid_points(GridConfig(size=size, spacing=10, center={"x": 100, "y": 50}), DEFAULT_PROFILE.volume)
    assert len(points) == size * size
    half = (size - 1) // 2 * 10
    assert points[0] == Point(100 - half, 50 - half)
    assert points[size * size // 2] == Point(100, 50), "the middle point is the centre"
    for i in range(1, len(points)):
        a, b = points[i - 1], points[i]
        assert abs(a.x - b.x) + abs(a.y - b.y) == pytest.approx(10), "each step goes to a neighbour"


def test_explicit_points_keep_their_order():
    grid = GridConfig(points=[{"x": 1, "y": 2}, {"x": 30, "y": 4}])
    assert grid_points(grid, DEFAULT_PROFILE.volume) == (Point(1, 2), Point(30, 4))


@pytest.mark.parametrize(
    ("volume", "centre"),
    [
        ({}, Point(100, 100)),
        ({"origin": "center"}, Point(0, 0)),
        ({"form_factor": "circular", "origin": "center"}, Point(0, 0)),
        ({"form_factor": "circular", "origin": "lowerleft"}, Point(100, 100)),
        ({"custom_box": CustomBox(x_min=-20, x_max=220, y_min=0, y_max=210, z_min=0, z_max=200)}, Point(100, 105)),
    ],
)
def test_default_grid_centre_is_the_bed_centre(volume, centre):
    assert bed_center(profile(**volume).volume) == centre


def test_region_from_the_profile_minus_the_margin():
    region = allowed_region(profile(origin="center").volume, 5, 150)
    assert isinstance(region, type(allowed_region(DEFAULT_PROFILE.volume, 0, None)))
    assert (region.x_min, region.x_max, region.y_min, region.y_max, region.z_max) == (-95, 95, -95, 95, 150)
    assert allowed_region(DEFAULT_PROFILE.volume, 101, None) == "a margin of 101 mm leaves no room on this bed"


def test_circular_bed_rejects_the_corners():
    fit = check_fit(printer_config(grid={"size": 3, "spacing": 80, "center": {"x": 0, "y": 0}}),
                    profile(form_factor="circular", origin="center"))  # fmt: skip
    bad = {i for i, _ in fit.problems}
    assert bad == {0, 2, 6, 8}, fit.problems
    assert "from the bed centre (0, 0), beyond the radius 95" in fit.problems[0][1]


def test_custom_box_is_used_as_the_volume():
    box = CustomBox(x_min=-30, x_max=170, y_min=0, y_max=200, z_min=0, z_max=100)
    fit = check_fit(
        printer_config(grid={"points": [{"x": -20, "y": 10}, {"x": 190, "y": 10}]}), profile(custom_box=box)
    )
    assert [i for i, _ in fit.problems] == [1] and "X 190 is outside -25..165" in fit.problems[0][1]


def test_clearance_above_max_z_is_refused():
    fit = check_fit(printer_config(max_z=4, z_clearance=5), DEFAULT_PROFILE)
    assert fit.refusal("octo") == "printer octo: plan refused: z_clearance 5 is above max Z 4"


def test_a_plan_that_fits_has_no_refusal():
    fit = check_fit(printer_config(), DEFAULT_PROFILE)
    assert fit.ok and fit.refusal("octo") is None and len(fit.points) == 9


# ------------------------------------------------------------------ config
def settings_from(tmp_path: Path, section: dict[str, Any], **top: Any) -> CoordinatorSettings:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"coordinator": section, **top}))
    return load_settings(CoordinatorSettings, path)


PRINTER = {"node": "octo", "plan": {"every": 5}, "cameras": [{"node": "cam", "camera": "bed"}]}


def test_defaults(tmp_path):
    s = settings_from(tmp_path, {"printers": [PRINTER]})
    p = s.coordinator.printers[0]
    assert (p.grid.size, p.grid.spacing, p.grid.center) == (3, 40.0, None)
    assert p.return_to_origin and p.z_clearance == 5 and p.settle == 0.5 and p.margin == 5
    assert s.coordinator.share_group == "printmesh" and not s.coordinator.fsync


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"grid": {"size": 4}}, "coordinator.printers.0.grid: size must be odd (1, 3, 5...)"),
        ({"grid": {"points": [{"x": 1, "y": 1}], "size": 3}}, "give either points or size/spacing/center"),
        ({"grid": {"points": []}}, "coordinator.printers.0.grid.points: List should have at least 1 item"),
        ({"plan": {}}, "coordinator.printers.0.plan: an empty plan holds nothing"),
        ({"cameras": []}, "coordinator.printers.0.cameras: List should have at least 1 item"),
        ({"cameras": [{"node": "a", "camera": "bed"}, {"node": "b", "camera": "bed"}]}, "duplicate camera"),
        ({"node": "state"}, "coordinator.printers.0.node: 'state' is reserved"),
        ({"node": "a b"}, "invalid node id 'a b'"),
        ({"settle": -1}, "coordinator.printers.0.settle: Input should be greater than or equal to 0"),
        ({"timeouts": {"mvoe": 3}}, "coordinator.printers.0.timeouts.mvoe: unknown key"),
        ({"colour": "red"}, "coordinator.printers.0.colour: unknown key"),
    ],
)
def test_config_errors_name_the_key(tmp_path, change, error):
    with pytest.raises(ConfigError) as exc:
        settings_from(tmp_path, {"printers": [{**PRINTER, **change}]})
    assert error in str(exc.value)


def test_duplicate_printers_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"coordinator\.printers: duplicate printer name"):
        settings_from(tmp_path, {"printers": [PRINTER, PRINTER]})


def test_other_components_sections_are_skipped(tmp_path):
    s = settings_from(tmp_path, {"printers": [PRINTER]}, host={"interval": 3}, camera={"cameras": []})
    assert s.coordinator.printers[0].node == "octo"


# ------------------------------------------------------------------ preview
def preview(tmp_path: Path, port: int, printers: list[dict[str, Any]], *extra: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "coord.yaml"
    cfg.write_text(yaml.safe_dump({"mqtt": {"port": port}, "coordinator": {"printers": printers}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    return subprocess.run([*PRINTMESH, "coordinator", "--config", str(cfg), "--preview", *extra],
                          env=env, capture_output=True, text=True, timeout=30)  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_preview_without_broker_uses_octoprints_default_profile_and_says_so(tmp_path):
    out = preview(tmp_path, free_port(), [PRINTER])
    assert out.returncode == 0, out.stderr
    assert "no broker at localhost" in out.stdout and "using OctoPrint's default profile" in out.stdout
    assert "printer octo: profile 'OctoPrint default' (200 × 200 × 200 mm, rectangular, origin lowerleft)" in out.stdout
    assert "    4  x       100  y       100  ok" in out.stdout and "=> 9 points fit" in out.stdout


def test_preview_marks_points_out_of_bounds_with_a_given_profile(tmp_path):
    prof = tmp_path / "small.yaml"
    prof.write_text(yaml.safe_dump({"width": 120, "depth": 120, "height": 100}))
    fits = {**PRINTER, "grid": {"size": 3, "spacing": 50, "center": {"x": 60, "y": 60}}}
    out = preview(tmp_path, free_port(), [fits], "--profile", str(prof))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"from {prof}" in out.stdout and "    2  x       110  y        10  ok" in out.stdout
    tight = {**PRINTER, "grid": {"size": 3, "spacing": 58, "center": {"x": 60, "y": 60}}}
    out = preview(tmp_path, free_port(), [tight], "--profile", str(prof))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "    0  x         2  y         2  OUT OF BOUNDS: X 2 is outside 5..115" in out.stdout
    assert "    4  x        60  y        60  ok" in out.stdout
    assert "=> printer octo: plan refused: grid point 0 (2, 2) is out of bounds" in out.stdout


def test_preview_reads_the_retained_profile_when_a_broker_answers(tmp_path, broker, observer: Observer):
    retained = profile(width=300, depth=250, origin="lowerleft").model_dump_json()
    observer.publish("printmesh/octo/printer/profile", retained, retain=True)
    other = {**PRINTER, "node": "other"}
    out = preview(tmp_path, broker.port, [PRINTER, other])
    assert out.returncode == 0, out.stderr
    assert "retained on printmesh/octo/printer/profile" in out.stdout
    assert "centre (150, 125) (the bed centre)" in out.stdout
    assert (
        "printer other: profile 'OctoPrint default'" in out.stdout
        and "no retained profile from its bridge" in out.stdout
    )


def test_preview_rejects_a_bad_profile_file_and_profile_alone(tmp_path):
    prof = tmp_path / "bad.json"
    prof.write_text(json.dumps({"width": -1, "depth": 1, "height": 1}))
    out = preview(tmp_path, free_port(), [PRINTER], "--profile", str(prof))
    assert out.returncode == 2 and "cannot use profile" in out.stderr and "width" in out.stderr
    cfg = tmp_path / "coord.yaml"
    out2 = subprocess.run([*PRINTMESH, "coordinator", "--config", str(cfg), "--profile", str(prof)],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out2.returncode == 2 and "--profile only goes with --preview" in out2.stderr
