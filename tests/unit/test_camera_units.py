"""Camera agent pieces without a broker: config, frame stamp, sources, drain logic, geometry."""

from __future__ import annotations

import io
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes.camera.fake_v4l2 import FakeV4l2Capture
from fakes.camera.helpers import write_video

from printmesh_camera.agent import capture_id_for
from printmesh_camera.config import (
    CameraSettings,
    DeviceSourceConfig,
    FileSourceConfig,
    SyntheticSourceConfig,
    UrlSourceConfig,
)
from printmesh_camera.framecode import Stamp, decode, decode_jpeg, draw
from printmesh_camera.imaging import orient, resize, target_size
from printmesh_camera.jobs import Backoff
from printmesh_camera.sources import SourceError, make_source
from printmesh_camera.sources.base import Pacer, SizeHint
from printmesh_camera.sources.device import DeviceSource
from printmesh_camera.sources.file import FileSource
from printmesh_camera.sources.mjpeg import MultipartParser, boundary_of
from printmesh_core.config import ConfigError, load_settings


def settings(tmp_path: Path, text: str) -> CameraSettings:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_settings(CameraSettings, path)


# ----------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("yaml_text", "expect"),
    [
        ("camera: {cameras: [{name: a, source: {type: webcam}}]}", "camera.cameras.0.source: type must be one of"),
        ("camera: {cameras: [{name: a, source: {device: 0}}]}", "camera.cameras.0.source: type must be one of"),
        ("camera: {cameras: [{name: a, source: {type: device, device: 0, fsp: 5}}]}", "source.device.fsp: unknown key"),
        ("camera: {cameras: [{name: a, source: {type: url, url: 'rtsp://x/y'}}]}", "source.url.url: expected an http"),
        ("camera: {cameras: [{name: cmd, source: {type: synthetic}}]}", "camera.cameras.0.name: camera name 'cmd' is"),
        ("camera: {cameras: [{name: Bed, source: {type: synthetic}}]}", "invalid camera name 'Bed'"),
        ("camera: {cameras: [{name: a, source: {type: synthetic}}, {name: a, source: {type: file, path: x}}]}",
         "duplicate camera name(s): a"),
        ("camera: {cameras: [{name: a, rotation: 45, source: {type: synthetic}}]}", "camera.cameras.0.rotation"),
        ("camera: {cameras: [{name: a, preview: {interval: 0.01}, source: {type: synthetic}}]}", "preview.interval"),
    ],
)  # fmt: skip
def test_invalid_config_names_the_key(tmp_path, yaml_text, expect):
    with pytest.raises(ConfigError) as err:
        settings(tmp_path, yaml_text)
    assert expect in str(err.value)


def test_url_credentials_move_out_of_the_url_and_stay_secret(tmp_path):
    s = settings(
        tmp_path,
        "camera: {cameras: [{name: a, source: {type: url, url: 'http://pi:s%40cret@cam:8080/?action=stream'}}]}",
    )
    src = s.camera.cameras[0].source
    assert isinstance(src, UrlSourceConfig)
    assert src.url == "http://cam:8080/?action=stream" and src.username == "pi"
    assert src.password is not None and src.password.get_secret_value() == "s@cret"
    assert "s@cret" not in repr(s.model_dump(mode="json"))


def test_defaults_and_effective_warmup(tmp_path):
    s = settings(tmp_path, "camera: {cameras: [{name: a, source: {type: device, device: '/dev/video0'}}, "
                           "{name: b, source: {type: synthetic}, warmup: 0.5}]}")  # fmt: skip
    a, b = s.camera.cameras
    assert a.effective_warmup == 2.0 and b.effective_warmup == 0.5
    assert a.preview.interval == 5.0 and a.quality == 85 and a.display == "a"
    assert settings(tmp_path, "{}").camera.cameras == []


def test_capture_id_is_the_request_id_when_it_is_a_topic_level():
    assert capture_id_for("layer-12.grid_3") == "layer-12.grid_3"
    derived = capture_id_for("layer 12/grid 3")
    assert derived.startswith("id-") and len(derived) == 23 and derived == capture_id_for("layer 12/grid 3")
    assert capture_id_for("x" * 65).startswith("id-")


# ---------------------------------------------------------------- framecode
def test_stamp_survives_jpeg_resize_rotation_and_flip():
    image = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), np.uint8)
    draw(image, Stamp(4242, 1700000000.123, "layer 12 grid 3/9"))
    _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 20])
    stamp = decode_jpeg(buf.tobytes())
    assert stamp and (stamp.counter, stamp.time, stamp.label) == (4242, 1700000000.123, "layer 12 grid 3/9")
    small = cv2.resize(image, (240, 135), interpolation=cv2.INTER_AREA)
    assert decode(small) and decode(small).label == "layer 12 grid 3/9"
    turned = orient(image, 90, "horizontal")
    found = decode(turned)
    assert found and found.orientation == "rotated 90 and flipped" and found.counter == 4242
    assert decode(np.zeros((200, 300, 3), np.uint8)) is None


def test_long_label_is_cut_on_a_character_boundary_and_flagged():
    image = np.zeros((360, 640, 3), np.uint8)
    draw(image, Stamp(1, 1.0, "é" * 40))
    stamp = decode(image)
    assert stamp and stamp.truncated and stamp.label == "é" * 22


# ---------------------------------------------------------------- geometry
def test_target_size_keeps_aspect_when_one_side_is_given():
    assert target_size(1280, 720, 640, None) == (640, 360)
    assert target_size(1280, 720, None, 360) == (640, 360)
    assert target_size(1280, 720, 100, 100) == (100, 100)
    assert target_size(1280, 720, None, None) == (1280, 720)


def test_orient_rotates_clockwise_then_flips():
    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = 255  # top-left marker
    assert orient(image, 90, "none").shape[:2] == (3, 2) and orient(image, 90, "none")[0, 1, 0] == 255
    assert orient(image, 180, "none")[1, 2, 0] == 255
    assert orient(image, 0, "horizontal")[0, 2, 0] == 255
    assert resize(image, 6, None).shape[:2] == (4, 6)


# ------------------------------------------------------------------ pacing
def test_pacer_never_returns_a_frame_from_before_the_request_nor_the_same_one_twice():
    pacer = Pacer(10.0, start=100.0)
    assert pacer.slot(100.25, -1) == (3, pytest.approx(100.3))
    assert pacer.slot(100.25, 3) == (4, pytest.approx(100.4))
    assert Pacer(0).slot(5.0, 7) == (8, 5.0)


def test_backoff_doubles_up_to_the_ceiling_and_resets():
    b = Backoff(1, 5)
    assert [b.next() for _ in range(5)] == [1, 2, 4, 5, 5]
    b.reset()
    assert b.next() == 1


# ------------------------------------------------------------------ sources
def test_synthetic_source_draws_counter_time_and_label():
    src = make_source(SyntheticSourceConfig(type="synthetic", fps=20), SizeHint(640, None))
    src.open()
    asked = time.monotonic()
    before = time.time()
    frame = src.read(asked, "layer 1")
    assert frame.image.shape == (360, 640, 3)
    stamp = decode(frame.image)
    assert stamp and stamp.label == "layer 1" and stamp.counter == frame.sequence and stamp.time >= round(before, 3)
    asked = time.monotonic()
    following = src.read(asked)
    # the next frame, paced at 20 fps (a loaded machine may skip frames, never repeat one)
    assert following.sequence >= (frame.sequence or 0) + 1 and time.monotonic() - asked <= 1 / 20 + 0.25
    src.close()


def test_synthetic_offline_flag_simulates_unplugging(tmp_path):
    flag = tmp_path / "unplugged"
    src = make_source(SyntheticSourceConfig(type="synthetic", fps=0, offline_flag=flag), SizeHint(None, None))
    src.open()
    flag.touch()
    with pytest.raises(SourceError, match="simulated unplug"):
        src.check()
    with pytest.raises(SourceError):
        src.read(time.monotonic())


@pytest.mark.parametrize("stamps", [True, False])
def test_device_drain_returns_a_frame_produced_after_the_request(stamps):
    """The driver ignores BUFFERSIZE (keeps 4 buffers) and the queue is full of old frames."""
    fake = FakeV4l2Capture(fps=25, buffers=4, stamps=stamps)
    config = DeviceSourceConfig(type="device", device="/dev/null", buffer_size=4)
    src = DeviceSource(config, SizeHint(1280, 720), lambda device: fake)
    src.open()
    assert fake.props[cv2.CAP_PROP_FRAME_WIDTH] == 1280 and fake.props[cv2.CAP_PROP_BUFFERSIZE] == 4
    time.sleep(0.6)
    asked = time.monotonic()
    frame = src.read(asked)
    finished_at = fake._done(int(frame.image[0, 0, 0]))
    assert finished_at >= asked, "a queued frame from before the request was returned"
    assert time.monotonic() - asked < 0.2


def test_device_errors_name_the_cause(tmp_path):
    src = DeviceSource(DeviceSourceConfig(type="device", device="/dev/printmesh-none"), SizeHint(None, None))
    with pytest.raises(SourceError, match="no such device"):
        src.open()
    dying = FakeV4l2Capture(fps=50, fail_after=0.1)
    src = DeviceSource(DeviceSourceConfig(type="device", device="/dev/null"), SizeHint(None, None), lambda d: dying)
    src.open()
    time.sleep(0.15)
    with pytest.raises(SourceError, match="stopped delivering"):
        src.read(time.monotonic())


def test_file_source_follows_the_wall_clock_and_loops(tmp_path):
    video = write_video(tmp_path / "loop.avi", frames=20, fps=10)
    src = FileSource(FileSourceConfig(type="file", path=video))
    src.open()
    first = decode(src.read(time.monotonic()).image)
    time.sleep(1.0)
    later = decode(src.read(time.monotonic()).image)
    assert first and later
    assert 8 <= (later.counter - first.counter) % 20 <= 12, "about 10 frames later, not the next frame"
    sequential = FileSource(FileSourceConfig(type="file", path=video, realtime=False))
    sequential.open()
    counters = [decode(sequential.read(0).image).counter for _ in range(22)]
    assert counters[:3] == [0, 1, 2] and counters[20:] == [0, 1], "loops at the end"
    with pytest.raises(SourceError, match="no such file"):
        FileSource(FileSourceConfig(type="file", path=tmp_path / "none.avi")).open()
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        FileSource(FileSourceConfig(type="file", path=tmp_path / "junk.avi")).open()


# ------------------------------------------------------------------ MJPEG / snapshot
def test_boundary_and_multipart_parsing_with_and_without_content_length():
    assert boundary_of('multipart/x-mixed-replace; boundary="--frame"') == b"frame"
    assert boundary_of("multipart/x-mixed-replace;boundary=boundarydonotcross") == b"boundarydonotcross"
    assert boundary_of("image/jpeg") is None
    stream = (b"--b\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\n\r\nAAAAA\r\n"
              b"--b\nContent-Type: image/jpeg\n\nBB\r\nB\r\n--b\r\n\r\nCC--b")  # fmt: skip
    parser = MultipartParser(io.BytesIO(stream).read, b"b")
    assert parser.next_part()[0] == b"AAAAA"
    assert parser.next_part()[0] == b"BB\r\nB"
    assert parser.next_part()[0] == b"CC"
    with pytest.raises(EOFError):
        parser.next_part()
