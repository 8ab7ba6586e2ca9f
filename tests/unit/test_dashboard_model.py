"""The Dashboard's pure parts: the mesh model, its sections, the layout."""

from __future__ import annotations

import json
from typing import Any

import pytest

from octoprint_printmesh.dashboard import capture_view, sections
from octoprint_printmesh.dashboard.layout import DEFAULT_WIDGETS, WIDGETS, normalise
from octoprint_printmesh.dashboard.model import MeshModel
from printmesh_core.config import ConfigError

ME = "mk4"


def j(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def status(state: str, ts: float = 100.0, reason: str | None = None, component: str = "host") -> bytes:
    return j(state=state, component=component, version="1.2.3", ts=ts, reason=reason)


HOST = j(ts=500.0, cpu={"percent": 12.345, "per_core": [12.3], "count": 1}, memory={"total": 100, "used": 40,
         "available": 60, "percent": 40.0}, future_field={"x": 1})  # fmt: skip
READING = j(ts=600.0, sensor="encl", location="enclosure", temperature=24.5, humidity=40.1, dew_point=10.2,
            unit="°C", samples=1, driver="simulated", model="DHT22")  # fmt: skip


def test_a_host_is_discovered_from_the_topic_tree_and_read_leniently():
    m = MeshModel(ME)
    assert m.apply("pi1/host/state", HOST, at=501) == {"host:pi1"}
    section = sections.host(m, "pi1")
    assert section["online"] and section["cpu"] == 12.3 and section["memory"]["percent"] == 40.0
    assert not section["here"] and sections.host(MeshModel("pi1", hosts=m.hosts), "pi1")["here"]
    assert "host:pi1" in m.section_keys()


def test_a_last_will_turns_the_host_offline_since_its_arrival_with_no_values():
    m = MeshModel(ME)
    m.apply("pi1/host/status", status("online"), at=400)
    m.apply("pi1/host/state", HOST, at=501)
    assert m.apply("pi1/host/status", status("offline", reason="lost"), at=840.0) >= {"host:pi1", "nodes"}
    section = sections.host(m, "pi1")
    assert section == {"node": "pi1", "here": False, "online": False, "since": 840.0, "reason": "lost"}


def test_a_retained_will_found_at_start_dates_from_the_last_data_not_the_process_start():
    m = MeshModel(ME)
    m.apply("pi1/host/state", HOST, at=900)
    m.apply("pi1/host/status", status("offline", ts=100.0, reason="lost"), at=901, retained=True)
    assert sections.host(m, "pi1")["since"] == 500.0  # the will's ts (100) is the start time: not used
    m.apply("pi1/host/status", status("offline", ts=450.0, reason="shutdown"), at=902, retained=True)
    assert sections.host(m, "pi1")["since"] == 450.0  # a clean shutdown stamps its own time


def test_a_sensor_shows_its_reading_until_its_agent_or_its_availability_says_offline():
    m = MeshModel(ME)
    assert m.apply("spi/sensors/encl/state", READING, at=601) == {"sensor:spi/encl"}
    s = sections.sensor(m, "spi", "encl")
    assert (s["online"], s["temperature"], s["humidity"], s["dew_point"], s["location"]) == (
        True,
        24.5,
        40.1,
        10.2,
        "enclosure",
    )
    m.apply("spi/sensors/encl/availability", j(state="offline", reason="no good read for 30 s", ts=700), at=700.5)
    s = sections.sensor(m, "spi", "encl")
    assert not s["online"] and s["since"] == 700.5 and "temperature" not in s
    m.apply("spi/sensors/encl/availability", j(state="online", ts=710), at=710)
    assert sections.sensor(m, "spi", "encl")["online"]
    assert m.apply("spi/sensors/status", status("offline", component="sensors"), at=720) == {"nodes", "sensor:spi/encl"}
    assert sections.sensor(m, "spi", "encl")["since"] == 720


def test_unreadable_and_unknown_messages_change_nothing_and_a_cleared_sensor_goes():
    m = MeshModel(ME)
    m.apply("spi/sensors/encl/state", READING, at=601)
    assert m.apply("spi/sensors/encl/state", b'{"temperature": "hot"}', at=602) == set()
    assert sections.sensor(m, "spi", "encl")["temperature"] == 24.5
    assert m.apply("spi/sensors/encl/state/extra", READING, at=603) == set()
    assert m.apply("other/printer/state", j(text="Printing"), at=604) == set()  # another printer: not this tab's
    assert m.apply("spi/sensors/encl/state", b"", at=605) == {"sensor:spi/encl"}
    assert ("spi", "encl") not in m.sensor_keys()


def test_the_printer_sections_come_from_this_bridge_and_count_its_exact_layers():
    m = MeshModel(ME)
    m.apply(f"{ME}/printer/state", j(text="Printing", flags={"printing": True}, ts=1), at=1)
    m.apply(f"{ME}/printer/layer_progress", j(current=12, total=20, current_height=2.4, total_height=4.0,
            average_duration=3.0, durations=[1.0, 2.0, 3.0], ts=2), at=2)  # fmt: skip
    job = sections.job(m)
    assert (job["layer"], job["layers"], job["height"], job["total_height"]) == (12, 20, 2.4, 4.0)
    assert sections.printer(m)["printing"]
    assert sections.layer_times(m) == {"durations": [1.0, 2.0, 3.0], "first": 9}


def test_the_planned_grid_marks_the_points_the_bridge_would_refuse():
    m = MeshModel(ME)
    m.apply(f"{ME}/printer/profile", j(name="p", volume={"width": 200, "depth": 200, "height": 200}, ts=1), at=1)
    grid = [{"x": 100, "y": 100}, {"x": 2, "y": 100}, {"x": 100, "y": 199}]
    state = j(printer=ME, phase="armed", plan={"every": 5}, armed=True, points=3, grid=grid, ts=2)
    assert m.apply(f"coord/coordinator/{ME}/state", state, at=2) == {"capture"}
    view = capture_view.capture(m, margin=5.0, max_z=None, image_url=lambda node, cid: None)
    assert view["grid"] == [[100, 100, True], [2, 100, False], [100, 199, False]]
    assert view["bed"]["box"] == [0, 200, 0, 200] and view["bed"]["allowed"] == [5, 195, 5, 195]


def test_a_camera_is_discovered_from_its_preview():
    m = MeshModel(ME)
    assert m.apply("cam/camera/bed/preview", b"jpeg", at=50.0) == {"camera:cam/bed"}
    section = sections.camera(m, "cam", "bed", lambda node, name: f"p/{node}/{name}.jpg")
    assert section["preview"] == "p/cam/bed.jpg?t=50.0" and section["online"]


def test_a_page_is_told_of_a_new_preview_every_two_seconds_at_most():
    m = MeshModel(ME)
    changed = [bool(m.apply("cam/camera/bed/preview", b"jpeg", at=50.0 + i)) for i in range(6)]
    assert changed == [True, False, True, False, True, False]  # a camera publishing every second
    assert m.cameras[("cam", "bed")].preview_at == 54.0
    assert m.apply("cam/camera/bed/preview", b"jpeg", at=10.0) == {"camera:cam/bed"}  # the clock went back


def test_the_layout_is_completed_deduplicated_and_checked():
    widgets = normalise([{"id": "sensors"}, {"id": "sensors", "enabled": False}, {"id": "job", "printing_only": True}])
    assert [w["id"] for w in widgets] == ["sensors", "job", *[w for w in WIDGETS if w not in ("sensors", "job")]]
    assert widgets[0]["enabled"] and widgets[1]["printing_only"]
    with pytest.raises(ConfigError, match=r"widgets\.0\.id"):
        normalise([{"id": "nope"}])
    assert normalise(None) == DEFAULT_WIDGETS
