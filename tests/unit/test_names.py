"""Names that cannot escape or overflow (issue 13).

Every name that reaches a topic level or a path: node, camera, printer and sensor names are
refused at config time with the key named; capture ids are digested unless safe; a G-code
file name becomes a short, plain job folder name whatever it is (240 characters, 255 bytes,
``../../x``, dots, unicode, control characters), and every path the store builds is proven
inside ``captures_dir``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from printmesh_camera.agent import capture_id_for
from printmesh_camera.config import CameraSettings
from printmesh_coordinator.config import CoordinatorSettings
from printmesh_coordinator.state import STEM_MAX, job_name
from printmesh_coordinator.store import Store
from printmesh_core.config import AgentSettings, ConfigError, load_settings
from printmesh_core.topics import NAME_MAX, TopicError, check_name, check_segment, is_name, name_or_digest
from printmesh_sensors.config import SensorsSettings

BAD_NAMES = [".", "..", "...", "", ".hidden", "a/b", "a\\b", "a+b", "#", "a b", "a\x01b", "a\x00", "x" * 65, "é"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_check_name_refuses_what_cannot_be_one_level_and_one_folder(bad):
    with pytest.raises(TopicError):
        check_name(bad, "node id")
    assert not is_name(bad)


def test_check_name_accepts_plain_names_up_to_the_bound_and_says_the_bound():
    for good in ("octo1", "mk4-a.b_c", "a..b", "x" * NAME_MAX):
        assert check_name(good) == good and is_name(good)
    with pytest.raises(TopicError, match=f"300 characters, at most {NAME_MAX}"):
        check_name("y" * 300, "printer name")
    with pytest.raises(TopicError, match="dots alone"):
        check_segment("..", "capture id")


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("bad", [".", "..", "x" * 300, ".x", "a/b", "+", "#", "a\tb"])
def test_node_ids_are_refused_at_config_time_naming_the_key(tmp_path, bad):
    with pytest.raises(ConfigError, match=r"^node_id: invalid node id"):
        load_settings(AgentSettings, write(tmp_path, {"node_id": bad}))


@pytest.mark.parametrize("bad", ["..", ".", "y" * 65, "a#"])
def test_coordinator_printer_and_camera_names_are_refused_naming_the_key(tmp_path, bad):
    printer = {"node": bad, "cameras": [{"node": "cams", "camera": "top"}]}
    with pytest.raises(ConfigError, match=r"coordinator\.printers\.0\.node: invalid node id"):
        load_settings(CoordinatorSettings, write(tmp_path, {"coordinator": {"printers": [printer]}}))
    printer = {"node": "octo", "cameras": [{"node": bad, "camera": "top"}]}
    with pytest.raises(ConfigError, match=r"coordinator\.printers\.0\.cameras\.0\.node: invalid node id"):
        load_settings(CoordinatorSettings, write(tmp_path, {"coordinator": {"printers": [printer]}}))
    printer = {"node": "octo", "cameras": [{"node": "cams", "camera": "top", "name": bad}]}
    with pytest.raises(ConfigError, match=r"coordinator\.printers\.0\.cameras\.0\.name: invalid camera name"):
        load_settings(CoordinatorSettings, write(tmp_path, {"coordinator": {"printers": [printer]}}))


@pytest.mark.parametrize("bad", ["..", ".", ".hidden", "a/b"])
def test_sensor_and_camera_names_are_refused_naming_the_key(tmp_path, bad):
    sensors = {"sensors": {"sensors": [{"name": bad, "driver": "simulated"}]}}
    with pytest.raises(ConfigError, match=r"sensors\.sensors\.0\.simulated\.name: invalid sensor name"):
        load_settings(SensorsSettings, write(tmp_path, sensors))
    camera = {"camera": {"cameras": [{"name": bad, "source": {"type": "synthetic"}}]}}
    with pytest.raises(ConfigError, match=r"camera\.cameras\.0\.name"):
        load_settings(CameraSettings, write(tmp_path, camera))
    long = {"sensors": {"sensors": [{"name": "s" * 300, "driver": "simulated"}]}}
    with pytest.raises(ConfigError, match=r"sensors\.sensors\.0\.simulated\.name.*64"):
        load_settings(SensorsSettings, write(tmp_path, long))


# ------------------------------------------------------------------ capture ids
@pytest.mark.parametrize("request_id", [".", "..", ".x", "a/b", "a+", "#", "z" * 65, "\ud800", "é", ""])
def test_capture_ids_are_digested_unless_they_are_safe_names(request_id):
    derived = capture_id_for(request_id)
    assert derived.startswith("id-") and len(derived) == 23 and is_name(derived), derived
    assert derived == capture_id_for(request_id), "stable: the requester can compute it"
    assert capture_id_for("layer-12.grid_3") == "layer-12.grid_3"
    assert name_or_digest("..", "x-").startswith("x-")


# ------------------------------------------------------------------ job folders
def folder_ok(name: str) -> None:
    assert name == Path(name).name and name not in (".", "..") and not name.startswith(".")
    assert len(name.encode()) <= 255 - 40, f"{len(name.encode())} bytes leaves no room for the files inside"
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in name), name


def test_a_240_character_file_name_gets_a_short_digested_folder_and_names_stay_apart():
    long = "a" * 236 + ".gcode"
    other = "a" * 235 + "b.gcode"
    one, two = job_name(long, 1700000000.0), job_name(other, 1700000000.0)
    folder_ok(one)
    assert one != two and one.startswith("a" * STEM_MAX + "-") and one.endswith("_20231114_221320"), one
    assert len(one) == STEM_MAX + 1 + 8 + 16 and one == job_name(f"uploads/{long}", 1700000000.0)


@pytest.mark.parametrize(
    "path",
    ["../../x.gcode", "..", "../..", "a/../../b.gcode", "..\\..\\w.gcode", "...gcode", ".gcode", "/etc/passwd",
     "é" * 124 + "a.gcode", "日本語のファイル名" * 9 + ".gcode", "x" * 249 + ".gcode", "tab\tnew\nline\x00.gcode",
     "a" + "." * 200 + ".gcode", "CON.gcode", "", None],
)  # fmt: skip
def test_path_tricks_and_255_byte_names_give_plain_folders_inside_the_root(tmp_path, path):
    name = job_name(path, 1700000000.0)
    folder_ok(name)
    store = Store(tmp_path / "caps")
    target = store.write(f"octo/{name}/layer_0001_pos_00_20231114_221320.jpg", b"x")
    assert target.is_relative_to((tmp_path / "caps").resolve()) and target.read_bytes() == b"x"


def test_the_255_byte_names_above_are_255_bytes():
    assert len(("é" * 124 + "a.gcode").encode()) == 255 == len(("x" * 249 + ".gcode").encode())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.none() | st.floats(0, 4e9))
def test_any_file_name_gives_a_plain_short_folder(path, started):
    name = job_name(path, started)
    folder_ok(name)
    assert name == job_name(path, started)


def test_the_store_refuses_every_path_that_is_not_plain_names_inside_the_root(tmp_path):
    store = Store(tmp_path / "caps")
    for bad in ("../x.jpg", "a/../../x.jpg", "a/./b.jpg", "a//b.jpg", "/abs.jpg", "a\\..\\b.jpg", "a/b\x00.jpg", ""):
        with pytest.raises(OSError, match="outside captures_dir"):
            store.write(bad, b"x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "caps").mkdir(exist_ok=True)
    os.symlink(outside, tmp_path / "caps" / "link")
    with pytest.raises(OSError, match="outside captures_dir"):
        store.write("link/x.jpg", b"x")
    assert list(outside.iterdir()) == [] and not (tmp_path / "x.jpg").exists()
    assert store.write("octo/job_1/a.jpg", b"ok").read_bytes() == b"ok"
