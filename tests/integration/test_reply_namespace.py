"""MQTT 5 response topics are honoured only inside the reply namespace (no reflection).

The attack from issue 12: a ``refresh`` request to the host agent whose response topic was a
camera's ``press`` topic made the camera capture. Now the host refuses the request, unrun,
with ``response_topic_refused`` on its default ``res/refresh`` topic, and the camera sees
nothing.
"""

from __future__ import annotations

import time

import pytest
from conftest import make_runtime
from fakes.camera.helpers import BASE as CAM_BASE
from fakes.camera.helpers import config as camera_config
from fakes.camera.helpers import synthetic
from test_host_agent import BASE as HOST_BASE
from test_host_agent import NODE as HOST_NODE
from test_host_agent import host_config

from printmesh_core.config import AgentSettings
from printmesh_core.requests import Requester
from printmesh_core.topics import (
    ComponentTopics,
    TopicError,
    Topics,
    is_reply_topic,
    reply_filter,
    reply_topic,
    requester_id,
)

HOST = ComponentTopics(HOST_NODE, "host")


def test_reply_topics_and_the_check():
    assert reply_topic("coord-coordinator", HOST) == f"reply/coord-coordinator/{HOST_NODE}/host"
    assert reply_filter("dash") == "reply/dash/#"
    assert is_reply_topic(f"reply/anyone/{HOST_NODE}/host", HOST)
    assert is_reply_topic(f"reply/anyone/{HOST_NODE}/host/deeper/levels", HOST)
    for bad in (
        None,  # outside the root
        "camnode/camera/bed/press",
        f"reply/anyone/{HOST_NODE}/camera",  # another component's answers
        "reply/anyone/other/host",
        f"reply/{HOST_NODE}/host",  # no requester level
        f"reply/a b/{HOST_NODE}/host",
    ):
        assert not is_reply_topic(bad, HOST), bad
    assert requester_id("coord-user", "n", "coordinator") == "coord-user"
    assert requester_id(None, "n", "coordinator") == "n-coordinator"
    assert requester_id("user@example", "n", "coordinator") == "n-coordinator"  # not a topic level


def test_node_id_reply_is_reserved():
    with pytest.raises(TopicError, match="reserved"):
        Topics("printmesh", "reply")
    with pytest.raises(TopicError, match="reserved"):
        Topics("printmesh", "n").component("host", "reply")
    with pytest.raises(ValueError, match="node id 'reply' is reserved"):
        AgentSettings.model_validate({"node_id": "reply"})


def test_a_response_topic_naming_a_cameras_press_is_refused_and_the_camera_never_captures(
    broker, observer, run_agent, tmp_path
):
    host = run_agent("host", host_config(tmp_path, interval=300))  # state only at start and on refresh
    camera = run_agent("camera", camera_config(synthetic("bed")))
    observer.topic(f"{HOST_BASE}/state")
    observer.topic(f"{CAM_BASE}/status", where=lambda d: d["state"] == "online")
    attacker = make_runtime(broker, "reflector")
    attacker.start()
    assert attacker.wait_connected(5)
    mark = observer.mark()
    for rid, target in (("attack", f"{CAM_BASE}/bed/press"), ("elsewhere", "my/inbox")):
        attacker.publish_absolute(f"{HOST_BASE}/cmd/refresh", f'{{"id": "{rid}"}}', qos=1, response_topic=target,
                                  correlation_data=b"c")  # fmt: skip
        refused = observer.topic(f"{HOST_BASE}/res/refresh", after=mark, where=lambda d, r=rid: d["id"] == r)
        assert refused["ok"] is False and refused["error"]["code"] == "response_topic_refused", refused
        assert target in refused["error"]["message"] and "printmesh/reply/<requester>/" in refused["error"]["message"]
    time.sleep(1.0)
    attacker.stop()
    seen = [m.topic for m in observer.messages[mark:]]
    assert f"{CAM_BASE}/bed/press" not in seen and "my/inbox" not in seen, seen
    assert not [t for t in seen if t.startswith(f"{CAM_BASE}/bed/capture/") or t == f"{CAM_BASE}/bed/last_capture"]
    assert not [t for t in seen if t == f"{HOST_BASE}/state"], "a refused request is not run"
    assert "response topic 'printmesh/camnode/camera/bed/press' refused" in host.log()
    assert camera.proc.poll() is None and host.proc.poll() is None


def test_the_core_requester_answers_come_back_in_its_own_reply_namespace(broker, observer, run_agent, tmp_path):
    run_agent("host", host_config(tmp_path))
    observer.topic(f"{HOST_BASE}/status", where=lambda d: d["state"] == "online")
    rt = make_runtime(broker, "rpc-caller")
    rt.start()
    assert rt.wait_connected(5)
    requester = Requester(rt, requester="tester")
    mark = observer.mark()
    response = requester.call(HOST, "refresh", {"id": "via-reply"}, timeout=10)
    rt.stop()
    assert response.ok and response.id == "via-reply"
    answer = observer.wait_for(lambda m: b"via-reply" in m.payload and "/cmd/" not in m.topic, after=mark)
    assert answer.topic == f"printmesh/reply/tester/{HOST_NODE}/host"
    assert not observer.on(f"{HOST_BASE}/res/refresh"), "nothing on the shared res/ topic"
