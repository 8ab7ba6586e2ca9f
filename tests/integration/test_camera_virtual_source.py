"""The virtual camera source without a broker: loading the job's file (folder, OctoPrint's API), following it."""

from __future__ import annotations

import json
import time

import pytest
from virtual_camera_support import SAMPLE, feeds_of, part_area, virtual

from printmesh_camera.follow import PrinterFollower
from printmesh_camera.sources import SourceError, make_source
from printmesh_camera.sources.base import SizeHint
from printmesh_core import contract

SIZE = (640, 360)


def test_source_follows_the_job_file_and_layer(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "box.gcode").write_bytes(SAMPLE.read_bytes())
    follower = PrinterFollower("demo")
    source = make_source(virtual(tmp_path, fps=0), SizeHint(*SIZE), feeds=feeds_of(follower))
    source.open()
    empty = source.read(time.monotonic()).image
    assert empty.shape == (SIZE[1], SIZE[0], 3) and part_area(empty) == 0
    follower.feed(contract.PRINTER_JOB, json.dumps({"file_path": "sub/box.gcode", "file_origin": "local"}).encode())
    areas = []
    for layer in (3, 12, 24):
        follower.feed(contract.PRINTER_LAYER_PROGRESS, json.dumps({"current": layer}).encode())
        areas.append(part_area(source.read(time.monotonic()).image))
    assert 0 < areas[0] < areas[1] < areas[2], areas
    follower.feed(contract.PRINTER_JOB, json.dumps({"file_path": "missing.gcode", "file_origin": "local"}).encode())
    with pytest.raises(SourceError, match="not found"):
        source.read(time.monotonic())
    source.close()


def test_an_sd_card_job_shows_an_empty_bed(tmp_path):
    follower = PrinterFollower("demo")
    follower.feed(contract.PRINTER_JOB, json.dumps({"file_path": "box.gcode", "file_origin": "sdcard"}).encode())
    source = make_source(virtual(tmp_path, fps=0), SizeHint(*SIZE), feeds=feeds_of(follower))
    source.open()
    assert part_area(source.read(time.monotonic()).image) == 0  # an SD card file cannot be read: empty bed


def test_a_slow_earlier_load_never_stands_in_for_the_job_file(tmp_path, monkeypatch):
    """The empty bed loaded at open must not be served once the job's file is being loaded."""
    import printmesh_camera.sources.virtual as module

    real = module.VirtualRenderer

    def slow(config, toolpath, size, realism=None):
        time.sleep(0.5 if toolpath.count == 0 else 1.5)  # the empty bed is ready while the file is not
        return real(config, toolpath, size, realism)

    monkeypatch.setattr(module, "VirtualRenderer", slow)
    (tmp_path / "box.gcode").write_bytes(SAMPLE.read_bytes())
    follower = PrinterFollower("demo")
    source = make_source(virtual(tmp_path, fps=0), SizeHint(*SIZE), feeds=feeds_of(follower))
    source.open()  # starts loading the empty bed
    follower.feed(contract.PRINTER_JOB, json.dumps({"file_path": "box.gcode", "file_origin": "local"}).encode())
    follower.feed(contract.PRINTER_LAYER_PROGRESS, json.dumps({"current": 10}).encode())
    assert part_area(source.read(time.monotonic()).image) > 0


def test_job_file_downloaded_from_octoprint_with_the_api_key(tmp_path):
    """A remote camera without the uploads folder: the file comes from OctoPrint's REST API."""
    import http.server
    import threading

    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("X-Api-Key")))
            ok = self.path == "/downloads/files/local/sub/box%20one.gcode" and self.headers.get("X-Api-Key") == "k1"
            body = SAMPLE.read_bytes() if ok else b"no"
            self.send_response(200 if ok else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        follower = PrinterFollower("demo")
        config = virtual(fps=0, files=None, octoprint={"url": url, "api_key": "k1"})
        source = make_source(config, SizeHint(*SIZE), feeds=feeds_of(follower))
        source.open()
        follower.feed(
            contract.PRINTER_JOB, json.dumps({"file_path": "sub/box one.gcode", "file_origin": "local"}).encode()
        )
        follower.feed(contract.PRINTER_LAYER_PROGRESS, json.dumps({"current": 12}).encode())
        assert part_area(source.read(time.monotonic()).image) > 0
        assert seen[-1] == ("/downloads/files/local/sub/box%20one.gcode", "k1")
        bad = make_source(virtual(fps=0, files=None, octoprint={"url": url, "api_key": "wrong"}), SizeHint(*SIZE),
                          feeds=feeds_of(follower))  # fmt: skip
        bad.open()
        with pytest.raises(SourceError, match=r"cannot download 'sub/box one\.gcode' from OctoPrint"):
            bad.read(time.monotonic())
    finally:
        server.shutdown()
