"""End to end per source: a video file, an MJPEG stream and a snapshot URL served on 127.0.0.1,
a stream that dies and comes back, and a device that is not there; real agent, real broker."""

from __future__ import annotations

import time

from fakes.camera.helpers import BASE, capture, config, synthetic, verify, wait_online, write_video
from fakes.camera.stamp_server import StampServer


def test_video_file_source_plays_in_real_time_in_a_loop(broker, observer, run_agent, tmp_path):
    video = write_video(tmp_path / "print.avi", frames=50, fps=10, size=(640, 480))
    cam = {"name": "file", "source": {"type": "file", "path": str(video)}, "preview": {"interval": 0}}
    run_agent("camera", config(cam))
    wait_online(observer, "file")
    first = capture(observer, id="f1")
    _, a = verify(first)
    time.sleep(2.0)
    _, b = verify(capture(observer, id="f2"))
    assert a and b and a.label == f"file frame {a.counter}" and first.result.sequence == a.counter
    assert 17 <= (b.counter - a.counter) % 50 <= 24, "the file kept playing: ~20 frames in 2 s, not the next one"
    assert (first.result.width, first.result.height) == (640, 480)


def test_rotation_flip_and_resolution_apply_to_captures(broker, observer, run_agent):
    cam = synthetic("bed", rotation=90, flip="horizontal", width=360, height=640)
    run_agent("camera", config(cam))
    wait_online(observer)
    got = capture(observer, id="turned", label="upside")
    image, stamp = verify(got)
    assert image.shape[:2] == (640, 360)
    assert stamp and stamp.label == "upside" and stamp.orientation == "rotated 90 and flipped"


def test_mjpeg_stream_with_basic_auth_gives_fresh_frames(broker, observer, run_agent):
    with StampServer(fps=20, auth=("pi", "raspberry")) as server:
        cam = {"name": "octo", "preview": {"interval": 0},
               "source": {"type": "url", "url": server.url("/stream", "pi:raspberry")}}  # fmt: skip
        run_agent("camera", config(cam))
        wait_online(observer, "octo")
        verify(capture(observer, id="m1"))
        time.sleep(2.0)  # the stream keeps pushing frames nobody asked for
        sent_before = server.sent
        got = capture(observer, id="m2", label="ignored by real cameras")
        _, stamp = verify(got)
        assert stamp and stamp.label == "stream" and stamp.counter > sent_before, "a frame from before the request"
        assert "(mjpeg)" in got.result.source and "raspberry" not in got.result.source
        assert got.result.sequence is not None


def test_snapshot_url_and_wrong_password(broker, observer, run_agent):
    with StampServer(auth=("pi", "raspberry")) as server:
        snap = {
            "name": "snap",
            "preview": {"interval": 0},
            "source": {"type": "url", "url": server.url("/snapshot"), "username": "pi", "password": "raspberry"},
        }
        locked = {
            "name": "locked",
            "preview": {"interval": 0},
            "source": {"type": "url", "url": server.url("/stream"), "username": "pi", "password": "hunter2"},
        }
        run_agent("camera", config(snap, locked))  # fmt: skip
        wait_online(observer, "snap")
        sent_before = server.sent
        got = capture(observer, id="s1", camera="snap")
        _, stamp = verify(got)
        assert stamp and stamp.label == "snapshot" and stamp.counter > sent_before and "(snapshot)" in got.result.source
        denied = capture(observer, id="s2", camera="locked")
        assert not denied.ok and denied.response["error"]["code"] == "source_error"
        assert server.url("/stream") in denied.error and "HTTP 401" in denied.error
        assert "username/password" in denied.error and "hunter2" not in denied.error


def test_stream_that_dies_mid_stream_goes_offline_and_comes_back(broker, observer, run_agent):
    server = StampServer(fps=20).start()
    try:
        cam = {"name": "octo", "preview": {"interval": 0.5, "width": 320}, "reopen": {"min_delay": 0.2, "max_delay": 1},
               "source": {"type": "url", "url": server.url("/stream"), "stall_timeout": 1.5, "timeout": 1}}  # fmt: skip
        agent = run_agent("camera", config(cam, synthetic("steady")))
        wait_online(observer, "octo")
        verify(capture(observer, id="alive", camera="octo"))
        mark = observer.mark()
        server.stop()  # the camera dies: the stream is cut and the port refuses connections
        down = observer.topic(f"{BASE}/octo/availability", after=mark, where=lambda d: d["state"] == "offline")
        assert server.url("/stream") in down["reason"]
        failed = capture(observer, id="dead", camera="octo")
        assert not failed.ok and failed.response["error"]["code"] == "source_error"
        assert server.url("/stream") in failed.error
        assert "connection refused" in failed.error or "ended the stream" in failed.error, failed.error
        verify(capture(observer, id="unaffected", camera="steady"))
        time.sleep(1.5)  # several reopen attempts with backoff while it is down
        mark = observer.mark()
        server.start()  # same port
        wait_online(observer, "octo", after=mark, timeout=5)
        sent_before = server.sent
        _, stamp = verify(capture(observer, id="back", camera="octo"))
        assert stamp and stamp.counter > sent_before
        observer.wait_for(lambda m: m.topic == f"{BASE}/octo/preview", after=mark)
        assert agent.proc.poll() is None and "Traceback" not in agent.log()
        assert "back online" in agent.log()
    finally:
        server.stop()


def test_stalled_stream_is_detected_without_requests(broker, observer, run_agent):
    """A server that accepts and then sends nothing: the reader notices the silence by itself."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    held: list = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=x\r\n\r\n")
            held.append(conn)  # ... and never a frame

    threading.Thread(target=accept, daemon=True).start()
    try:
        cam = {"name": "mute", "preview": {"interval": 0}, "warmup": 0,
               "source": {"type": "url", "url": f"http://127.0.0.1:{port}/stream", "stall_timeout": 1}}  # fmt: skip
        run_agent("camera", config(cam))
        down = observer.topic(f"{BASE}/mute/availability",
                              where=lambda d: d["state"] == "offline" and d["reason"] != "starting")  # fmt: skip
        assert "stalled" in down["reason"] and f"127.0.0.1:{port}" in down["reason"]
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_unplugged_device_is_offline_with_the_cause_and_never_crashes(broker, observer, run_agent):
    cam = {"name": "usb", "preview": {"interval": 1}, "reopen": {"min_delay": 0.2, "max_delay": 0.5},
           "source": {"type": "device", "device": "/dev/video-printmesh-test"}}  # fmt: skip
    agent = run_agent("camera", config(cam, {"name": "idx", "source": {"type": "device", "device": 63}}))
    down = observer.topic(f"{BASE}/usb/availability", where=lambda d: d["reason"] and "no such device" in d["reason"])
    assert down["reason"].startswith("device /dev/video-printmesh-test: ")
    observer.topic(f"{BASE}/idx/availability", where=lambda d: d["reason"] and "/dev/video63" not in d["reason"]
                   and "device 63" in d["reason"])  # fmt: skip
    failed = capture(observer, id="u1", camera="usb")
    assert not failed.ok and "device /dev/video-printmesh-test" in failed.error and "unplugged" in failed.error
    time.sleep(1.2)  # reopen attempts keep failing quietly
    assert agent.proc.poll() is None
    assert agent.log().count("camera usb offline") <= 2, "a repeated failure is not logged every attempt"
