"""End to end: the real `printmesh camera` process with synthetic cameras, against a real mosquitto."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import yaml
from conftest import make_runtime
from fakes.camera.helpers import (
    BASE,
    NODE,
    Captured,
    capture,
    collect,
    config,
    retained,
    send,
    synthetic,
    verify,
    wait_online,
)

from printmesh_camera.framecode import decode
from printmesh_core.config import MqttConfig
from printmesh_core.models import CommandResponse
from printmesh_core.models.camera import CamerasResult, CaptureResult
from printmesh_core.models.status import Availability
from printmesh_core.mqtt import MqttRuntime
from printmesh_core.requests import Requester
from printmesh_core.topics import Topics


def test_capture_round_trip_metadata_label_and_image_before_response(broker, observer, run_agent):
    run_agent("camera", config(synthetic("bed")))
    wait_online(observer)
    got = capture(observer, id="layer-12.grid-3", camera="bed", label="layer 12 grid 3/9")
    _, stamp = verify(got)
    meta = got.result
    assert meta.capture_id == "layer-12.grid-3" and meta.topic == f"{BASE}/bed/capture/layer-12.grid-3"
    assert (meta.width, meta.height, meta.quality, meta.camera) == (1280, 720, 85, "bed")
    assert stamp is not None and stamp.label == "layer 12 grid 3/9" and stamp.counter == meta.sequence
    assert abs(stamp.time - meta.timestamp) < 0.01
    last = observer.topic(f"{BASE}/bed/last_capture", where=lambda d: d["capture_id"] == "layer-12.grid-3")
    assert CaptureResult.model_validate(last).sha256 == meta.sha256
    # size and quality overrides, and the camera may be omitted when there is only one
    small = capture(observer, id="small", width=640)
    assert verify(small)[0].shape[:2] == (360, 640)
    square = capture(observer, id="square", width=320, height=320, quality=30)
    assert verify(square)[0].shape[:2] == (320, 320) and square.result.quality == 30
    # an id that is not a topic level gets a derived capture id; a numeric id (Node-RED) is a string
    odd = capture(observer, id="layer 12 / grid 3")
    verify(odd)
    assert odd.result.capture_id.startswith("id-") and odd.result.topic.endswith(odd.result.capture_id)
    mark = observer.mark()
    send(observer, '{"id": 42}')
    numeric = collect(observer, "42", mark)
    verify(numeric)
    assert numeric.result.topic == f"{BASE}/bed/capture/42"


def test_capture_after_idle_is_a_fresh_frame(broker, observer, run_agent):
    run_agent("camera", config(synthetic("bed", fps=5)))
    wait_online(observer)
    first = verify(capture(observer, id="before-idle"))[1]
    time.sleep(2.0)
    asked = time.time()
    got = capture(observer, id="after-idle")
    stamp = verify(got)[1]
    assert first and stamp
    assert stamp.time >= round(asked, 3) - 0.001, "the frame was produced before the request"
    assert got.result.timestamp >= round(asked, 3) - 0.001
    assert stamp.counter >= first.counter + 9, "the counter follows the 5 fps clock through the idle time"


def test_concurrent_requests_served_in_order_and_other_cameras_not_blocked(broker, observer, run_agent):
    # 'slow' waits for its next frame (4 fps) on each capture; 6 queued requests take ~1.5 s
    run_agent("camera", config(synthetic("slow", fps=4), synthetic("fast")))
    wait_online(observer, "slow")
    wait_online(observer, "fast")
    mark = observer.mark()
    ids = [f"s{i}" for i in range(6)]
    for rid in ids:
        send(observer, {"id": rid, "camera": "slow", "label": rid})
    send(observer, {"id": "f0", "camera": "fast"})
    slow = [collect(observer, rid, mark) for rid in ids]
    fast = collect(observer, "f0", mark)
    stamps = [verify(c)[1] for c in slow]
    verify(fast)
    assert [s.label for s in stamps if s] == ids
    counters = [s.counter for s in stamps if s]
    assert counters == sorted(counters) and len(set(counters)) == 6, "served one after the other, in order"
    assert [c.response_index for c in slow] == sorted(c.response_index for c in slow)
    assert fast.response_index < slow[2].response_index, "the fast camera waited for the slow one"


def test_malformed_requests_get_error_answers_and_never_crash(broker, observer, run_agent):
    agent = run_agent("camera", config(synthetic("bed"), synthetic("top")))
    wait_online(observer, "bed")
    mark = observer.mark()
    send(observer, "this is not json")
    send(observer, "[1, 2]")
    bad = {
        "b1": {"id": "b1", "camera": "nope"},
        "b2": {"id": "b2", "camera": "bed", "width": 0},
        "b3": {"id": "b3", "camera": "bed", "bogus": 1},
        "b4": {"id": "b4"},
        "b5": {"id": "b5", "camera": "bed", "quality": 101},
        "b6": {"id": "b6", "camera": "bed", "label": "x" * 201},
    }
    for body in bad.values():
        send(observer, body)
    answers = {rid: collect(observer, rid, mark) for rid in bad}
    assert answers["b1"].response["error"]["code"] == "unknown_camera" and "bed, top" in answers["b1"].error
    assert all(a.response["error"]["code"] == "invalid_request" for r, a in answers.items() if r != "b1")
    assert "width" in answers["b2"].error and "bogus" in answers["b3"].error and "quality" in answers["b5"].error
    assert "camera: required with 2 cameras" in answers["b4"].error
    verify(capture(observer, id="still-fine", camera="top"))
    assert agent.proc.poll() is None and "not valid JSON" in agent.log() and "Traceback" not in agent.log()


def test_mqtt5_correlation_data_rides_on_the_image_and_the_response(broker, observer, run_agent):
    run_agent("camera", config(synthetic("bed")))
    wait_online(observer)
    inbox = f"printmesh/reply/tester/{NODE}/camera"  # the reply namespace: the only one honoured
    got: list = []
    requester = make_runtime(broker, "v5-camera-requester")
    requester.subscribe(inbox, got.append)
    requester.subscribe(f"{BASE}/bed/capture/+", got.append)
    requester.start()
    assert requester.wait_connected(5)
    time.sleep(0.3)
    requester.publish_absolute(f"{BASE}/cmd/capture", '{"id": "v5"}', qos=1, response_topic=inbox,
                               correlation_data=b"\x00corr-7")  # fmt: skip
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    requester.stop()
    assert [m.topic for m in got] == [f"{BASE}/bed/capture/v5", inbox], "image first, then the answer"
    assert all(m.correlation_data == b"\x00corr-7" for m in got)
    verify(Captured(json.loads(got[1].payload), got[0].payload, image_index=0, response_index=1))


def test_plain_mosquitto_pub_and_sub_work_with_mqtt_3_1_1(broker, observer, run_agent, tmp_path):
    run_agent("camera", config(synthetic("bed")), env={"PRINTMESH_MQTT__PROTOCOL": "3.1.1"})
    wait_online(observer)
    out = tmp_path / "image.jpg"
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", f"{BASE}/bed/capture/cli-1", "-C", "1",
         "-N", "-W", "10"], stdout=out.open("wb"),
    )  # fmt: skip
    time.sleep(0.3)
    request = '{"id": "cli-1", "label": "from the shell"}'
    pub = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", f"{BASE}/cmd/capture"]
    subprocess.run([*pub, "-m", request], check=True)
    assert sub.wait(15) == 0
    response = observer.topic(f"{BASE}/res/capture", where=lambda d: d["id"] == "cli-1")
    verify(Captured(response, out.read_bytes(), image_index=0, response_index=1))


def test_button_press_captures_with_a_fresh_id_every_time(broker, observer, run_agent):
    agent = run_agent("camera", config(synthetic("bed")))
    wait_online(observer)
    observer.publish(f"{BASE}/bed/press", "PRESS", retain=True)  # retained: ignored, never replayed
    observer.publish(f"{BASE}/bed/press", b"", retain=True)
    mark = observer.mark()
    observer.publish(f"{BASE}/bed/press", "PRESS")
    observer.publish(f"{BASE}/bed/press", '{"label": "from HA"}')
    first = observer.topic(f"{BASE}/res/capture", after=mark)
    second = observer.topic(f"{BASE}/res/capture", after=mark, where=lambda d: d["id"] != first["id"])
    assert first["id"].startswith("press-") and second["id"].startswith("press-")
    for answer in (first, second):
        verify(collect(observer, answer["id"], mark))
    assert second["data"]["label"] == "from HA"
    last = observer.topic(f"{BASE}/bed/last_capture", where=lambda d: d["request_id"] == second["id"])
    assert last["topic"] == f"{BASE}/bed/capture/{second['id']}"
    time.sleep(0.3)
    answers = [m for m in observer.on(f"{BASE}/res/capture")]
    assert len(answers) == 2 and "ignoring retained press" in agent.log()


def test_preview_is_retained_raw_jpeg_at_the_configured_interval(broker, observer, run_agent):
    cam = synthetic("bed", preview={"interval": 0.5, "width": 320, "quality": 60})
    run_agent("camera", config(cam, synthetic("dark")))
    wait_online(observer)
    mark = observer.mark()
    time.sleep(2.6)
    previews = [m for m in observer.messages[mark:] if m.topic == f"{BASE}/bed/preview"]
    assert 4 <= len(previews) <= 7, len(previews)
    assert all(m.retain for m in previews), "previews are retained (seen through retain-as-published)"
    data = retained(broker, f"{BASE}/bed/preview")
    assert data is not None and data[:2] == b"\xff\xd8"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (180, 320) and decode(image) is not None
    assert not observer.on(f"{BASE}/dark/preview"), "interval 0 = no preview"


def test_discovery_camera_button_and_last_capture_sensor(broker, observer, run_agent):
    run_agent("camera", config(synthetic("bed", title="Bed", preview={"interval": 1}), synthetic("side")))
    wait_online(observer, "side")
    time.sleep(0.5)
    configs = {m.topic: json.loads(m.payload) for m in observer.messages
               if m.topic.startswith("homeassistant/") and m.payload}  # fmt: skip
    prefix = f"homeassistant/{{}}/printmesh_{NODE}_camera/{{}}/config"
    cam = configs[prefix.format("camera", "bed")]
    assert cam["topic"] == f"{BASE}/bed/preview" and "image_encoding" not in cam and cam["name"] == "Bed"
    assert [a["topic"] for a in cam["availability"]] == [f"{BASE}/status", f"{BASE}/bed/availability"]
    assert cam["availability_mode"] == "all"
    button = configs[prefix.format("button", "bed_capture")]
    assert button["command_topic"] == f"{BASE}/bed/press" and button["name"] == "Bed capture"
    sensor = configs[prefix.format("sensor", "bed_last_capture")]
    assert sensor["device_class"] == "timestamp" and sensor["state_topic"] == f"{BASE}/bed/last_capture"
    assert [a["topic"] for a in sensor["availability"]] == [f"{BASE}/status"]
    assert prefix.format("camera", "side") not in configs, "no preview, no camera entity"
    assert prefix.format("button", "side_capture") in configs
    ids = [c["unique_id"] for c in configs.values()]
    assert len(ids) == len(set(ids)) == 5


def test_cameras_command_lists_state_and_topics(broker, observer, run_agent, tmp_path):
    flag = tmp_path / "unplugged"
    flag.touch()
    broken = synthetic("broken", source={"type": "synthetic", "offline_flag": str(flag)})
    run_agent("camera", config(synthetic("bed"), broken))
    wait_online(observer)
    observer.topic(f"{BASE}/broken/availability", where=lambda d: d["state"] == "offline" and d["reason"] != "starting")
    observer.publish(f"{BASE}/cmd/cameras", '{"id": "list"}')
    answer = observer.topic(f"{BASE}/res/cameras", where=lambda d: d["id"] == "list")
    cameras = {c.name: c for c in CamerasResult.model_validate(answer["data"]).cameras}
    assert cameras["bed"].state == "online" and cameras["bed"].capture_topic == f"{BASE}/bed/capture/+"
    assert cameras["broken"].state == "offline" and "simulated unplug" in (cameras["broken"].reason or "")


def test_unplug_and_replug_availability_errors_and_recovery(broker, observer, run_agent, tmp_path):
    flag = tmp_path / "unplugged"
    flaky = synthetic("flaky", source={"type": "synthetic", "fps": 10, "offline_flag": str(flag)},
                      reopen={"min_delay": 0.2, "max_delay": 1})  # fmt: skip
    agent = run_agent("camera", config(flaky, synthetic("steady")))
    wait_online(observer, "flaky")
    mark = observer.mark()
    flag.touch()
    down = observer.topic(f"{BASE}/flaky/availability", after=mark, where=lambda d: d["state"] == "offline")
    assert "synthetic" in down["reason"] and "simulated unplug" in down["reason"]
    failed = capture(observer, id="while-down", camera="flaky")
    assert not failed.ok and failed.response["error"]["code"] == "source_error"
    assert "synthetic" in failed.error and "simulated unplug" in failed.error
    verify(capture(observer, id="others-fine", camera="steady"))
    mark = observer.mark()
    flag.unlink()
    wait_online(observer, "flaky", after=mark, timeout=5)
    verify(capture(observer, id="after-replug", camera="flaky"))
    assert agent.proc.poll() is None


def test_sigterm_stops_cleanly_and_marks_cameras_offline(broker, observer, run_agent):
    agent = run_agent("camera", config(synthetic("bed", fps=10, preview={"interval": 0.2})))
    wait_online(observer)
    mark = observer.mark()
    assert agent.stop(signal.SIGTERM) == 0
    avail = observer.topic(f"{BASE}/bed/availability", after=mark, where=lambda d: d["state"] == "offline")
    assert Availability.model_validate(avail).reason == "agent stopped"
    status = observer.topic(f"{BASE}/status", after=mark, where=lambda d: d["state"] == "offline")
    assert status["reason"] == "shutdown" and "Traceback" not in agent.log()


def test_removed_camera_has_its_retained_topics_cleared(broker, observer, run_agent):
    first = run_agent("camera", config(synthetic("bed"), synthetic("old", preview={"interval": 0.3})))
    wait_online(observer, "old")
    observer.wait_for(lambda m: m.topic == f"{BASE}/old/preview")
    verify(capture(observer, id="old-1", camera="old"))
    assert first.stop() == 0
    assert retained(broker, f"{BASE}/old/preview")
    run_agent("camera", config(synthetic("bed")))
    observer.wait_for(lambda m: m.topic == f"{BASE}/old/preview" and m.payload == b"")
    time.sleep(0.3)
    for leaf in ("preview", "availability", "last_capture"):
        assert retained(broker, f"{BASE}/old/{leaf}", timeout=1) is None, leaf
    assert retained(broker, f"{BASE}/bed/availability")


def test_bad_config_exits_2_naming_the_key(broker, run_agent):
    agent = run_agent("camera", config({"name": "bed", "source": {"type": "webcam"}}))
    assert agent.proc.wait(10) == 2
    assert "camera.cameras.0.source: type must be one of: device, url, file, synthetic" in agent.log()
    agent = run_agent("camera", config(synthetic("bed", rotation=45)))
    assert agent.proc.wait(10) == 2 and "camera.cameras.0.rotation" in agent.log()


def test_without_opencv_check_works_and_cameras_report_what_to_install(broker, observer, run_agent, tmp_path):
    blocker = tmp_path / "no-opencv"
    (blocker / "cv2").mkdir(parents=True)
    (blocker / "cv2" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'cv2'\", name='cv2')\n")
    env = {"PYTHONPATH": str(blocker)}
    cfg = config(synthetic("bed"))
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(cfg))
    check = subprocess.run([sys.executable, "-m", "printmesh_core.cli", "camera", "--check", "-c", str(path)],
                           capture_output=True, text=True, env={**os.environ, **env})  # fmt: skip
    assert check.returncode == 0 and "config OK" in check.stdout, check.stderr
    agent = run_agent("camera", cfg, env=env)
    down = observer.topic(f"{BASE}/bed/availability", where=lambda d: d["reason"] and "not installed" in d["reason"])
    assert "opencv-python-headless is not installed (pip install opencv-python-headless)" in down["reason"]
    failed = capture(observer, id="no-cv")
    assert not failed.ok and "opencv-python-headless is not installed" in failed.error
    assert agent.proc.poll() is None
    assert agent.stop() == 0


def test_a_capture_asked_again_after_its_answer_was_lost_gets_the_same_image_and_is_not_taken_again(
    broker, observer, run_agent
):
    """The broker stops while a capture waits for its frame; the camera comes back first (every 1 s)
    and sends the image and the answer to nobody: the requester (every 3 s) kept no session. Back,
    the requester sends the request again with the same id: the camera sends the same JPEG again,
    then the first answer, and takes no new picture."""
    agent = run_agent(
        "camera", config(synthetic("bed", fps=0.25), mqtt={"reconnect": {"min_delay": 1, "max_delay": 1}})
    )
    wait_online(observer)
    cfg = MqttConfig(host=broker.host, port=broker.port, reconnect={"min_delay": 3, "max_delay": 3})  # type: ignore[arg-type]
    client = MqttRuntime(cfg, root="printmesh", client_id="slow-requester")
    images: list[bytes] = []
    client.subscribe(f"{BASE}/bed/capture/+", lambda m: images.append(m.payload), qos=1)
    requester = Requester(client)
    client.start()
    assert client.wait_connected(5)
    camera = Topics("printmesh", NODE).component("camera")
    first = requester.call(camera, "capture", {"id": "phase", "camera": "bed"}, timeout=10)  # when frames come
    assert first.ok and first.data
    period = 4.0
    next_frame = first.data["timestamp"] + period * (1 + int((time.time() - first.data["timestamp"]) // period))
    time.sleep(max(0.0, next_frame + 0.2 - time.time()))  # just after a frame: the next is 3.8 s away
    result: list[CommandResponse] = []
    caller = threading.Thread(
        target=lambda: result.append(requester.call(camera, "capture", {"id": "lost", "camera": "bed"}, timeout=30))
    )
    caller.start()
    time.sleep(0.3)  # the camera has the request and waits for its frame
    broker.stop()
    time.sleep(4.5)  # the frame comes at 3.8 s: image and answer wait in the camera's queue
    broker.start()
    caller.join(30)
    client.stop()
    assert result and result[0].ok and result[0].data, result
    answer = CaptureResult.model_validate(result[0].data)
    again = [i for i in images if hashlib.sha256(i).hexdigest() == answer.sha256]
    assert again, f"the image was not sent again ({len(images)} images received)"
    log = agent.log()
    assert "repeated request id 'lost' for capture: not run again" in log, log[-2000:]
    assert "repeated capture lost: its image sent again" in log


def test_a_repeat_of_a_capture_whose_image_is_no_longer_kept_is_answered_image_not_kept(broker, observer, run_agent):
    """The camera keeps its last 32 images for repeats; a repeat of an older capture cannot get its
    image again, so it is told so at once (the requester fails or retries that point now) instead of
    getting the first answer and waiting for an image that will not come."""
    agent = run_agent("camera", config(synthetic("bed", fps=30)))
    wait_online(observer)
    client = make_runtime(broker, "evicting-requester")
    requester = Requester(client)
    client.start()
    assert client.wait_connected(5)
    camera = Topics("printmesh", NODE).component("camera")
    assert requester.call(camera, "capture", {"id": "old", "camera": "bed"}, timeout=10).ok
    recent = requester.call(camera, "capture", {"id": "recent", "camera": "bed"}, timeout=10)
    assert recent.ok
    for i in range(31):  # "recent" is now the oldest of the 32 kept, "old" is gone
        assert requester.call(camera, "capture", {"id": f"fill-{i}", "camera": "bed"}, timeout=10).ok
    again = requester.call(camera, "capture", {"id": "old", "camera": "bed"}, timeout=10)
    assert not again.ok and again.error is not None and again.error.code == "image_not_kept", again
    assert "ask again with a new id" in again.error.message
    assert requester.call(camera, "capture", {"id": "recent", "camera": "bed"}, timeout=10) == recent, "still kept"
    client.stop()
    log = agent.log()
    assert "repeated capture old: its image is no longer kept; answered image_not_kept" in log, log[-2000:]
    assert log.count("repeated capture recent: its image sent again") == 1
