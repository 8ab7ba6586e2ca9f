"""The MQTT runtime on its own, against a real mosquitto."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest
from conftest import Observer, make_runtime

from printmesh_core.commands import QUEUED_PER_WORKER, Command, CommandServer
from printmesh_core.config import MqttConfig
from printmesh_core.models import CommandRequest, CommandResponse
from printmesh_core.mqtt import MqttRuntime, Presence
from printmesh_core.requests import Requester, RequestTimeout
from printmesh_core.topics import TopicError, Topics
from printmesh_devkit.broker import LocalBroker


class EchoRequest(CommandRequest):
    text: str


def echo_server(rt: MqttRuntime, node: str = "n1", inline: bool = False) -> CommandServer:
    topics = Topics("printmesh", node)
    server = CommandServer(
        rt, topics, topics.component("echo"), [Command("echo", EchoRequest, lambda r: {"text": r.text}, inline=inline)]
    )
    server.attach()
    return server


def test_publish_refuses_wildcards_and_adds_root(broker, observer):
    rt = make_runtime(broker, "pub")
    rt.start()
    assert rt.wait_connected(5)
    with pytest.raises(TopicError):
        rt.publish("n/+/x", b"1")
    with pytest.raises(TopicError):
        rt.publish("n/#", b"1")
    with pytest.raises(TopicError):
        rt.publish_absolute("a//b", b"1")
    rt.publish("n/x/y", b"hello", qos=1)
    assert observer.wait_for(lambda m: m.topic == "printmesh/n/x/y").payload == b"hello"
    rt.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("inline", [False, True])
def test_request_response_round_trip(broker, protocol, inline):
    server_rt = make_runtime(broker, "server", protocol)
    server = echo_server(server_rt, inline=inline)
    client_rt = make_runtime(broker, "client", protocol)
    requester = Requester(client_rt)
    server_rt.start()
    client_rt.start()
    assert server_rt.wait_connected(5) and client_rt.wait_connected(5)
    target = Topics("printmesh", "n1").component("echo")
    time.sleep(0.2)
    for i in range(20):
        resp = requester.call(target, "echo", {"text": f"hi {i}"}, timeout=5)
        assert resp.ok and resp.data == {"text": f"hi {i}"}
    bad = requester.call(target, "echo", {"nope": 1}, timeout=5)
    assert not bad.ok and bad.error and bad.error.code == "invalid_request"
    with pytest.raises(RequestTimeout):
        requester.call(Topics("printmesh", "nobody").component("echo"), "echo", {"text": "x"}, timeout=0.5)
    server.close()
    server_rt.stop()
    client_rt.stop()


def test_a_flood_of_slow_requests_is_answered_busy_past_the_backlog_and_the_rest_complete(broker):
    """Handlers that hang cannot make requests pile up without bound: past QUEUED_PER_WORKER per
    worker each request is answered 'busy' at once; the ones taken are answered when the handler frees."""
    gate = threading.Event()
    server_rt, client_rt = make_runtime(broker, "slow-server"), make_runtime(broker, "slow-client")
    topics = Topics("printmesh", "n1")
    echo = Command("echo", EchoRequest, lambda r: gate.wait(30) and {"text": r.text})
    server = CommandServer(server_rt, topics, topics.component("echo"), [echo], workers=1)
    server.attach()
    requester = Requester(client_rt)
    server_rt.start()
    client_rt.start()
    assert server_rt.wait_connected(5) and client_rt.wait_connected(5)
    time.sleep(0.2)
    limit = QUEUED_PER_WORKER
    answers: dict[int, CommandResponse] = {}

    def call(i: int) -> None:
        answers[i] = requester.call(topics.component("echo"), "echo", {"text": f"r{i}"}, timeout=20)

    callers = [threading.Thread(target=call, args=(i,)) for i in range(limit + 5)]
    for t in callers:
        t.start()
        time.sleep(0.01)  # in order: the first ones take the backlog
    deadline = time.monotonic() + 10
    while len(answers) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    busy = sorted(i for i, a in answers.items() if not a.ok and a.error and a.error.code == "busy")
    assert len(busy) == 5 and len(answers) == 5, answers
    gate.set()
    for t in callers:
        t.join(25)
    done = [i for i, a in answers.items() if a.ok]
    assert len(done) == limit and all(answers[i].data == {"text": f"r{i}"} for i in done)
    assert server_rt.health.rejected >= 5
    again = requester.call(topics.component("echo"), "echo", {"id": answers[busy[0]].id, "text": "again"}, timeout=5)
    assert again.ok and again.data == {"text": "again"}, "a request answered busy did not run: its id may be retried"
    server.close()
    server_rt.stop()
    client_rt.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_repeated_request_runs_once_and_every_repeat_gets_the_first_answer(broker, protocol):
    """A requester that lost its broker cannot know whether its request ran: it sends it again with
    the same id. The command runs once; each repeat (while it runs, and after) gets its answer,
    under MQTT 5 on its own response topic with its own correlation data."""
    gate, runs = threading.Event(), []

    def handler(request: EchoRequest) -> dict[str, object]:
        runs.append(request.text)
        gate.wait(10)
        return {"text": request.text, "run": len(runs)}

    server_rt, client_rt = make_runtime(broker, "rep-server", protocol), make_runtime(broker, "rep-client", protocol)
    topics = Topics("printmesh", "n1")
    server = CommandServer(server_rt, topics, topics.component("echo"), [Command("echo", EchoRequest, handler)])
    server.attach()
    got: list = []
    inbox = "printmesh/reply/tester/n1/echo"
    client_rt.subscribe(inbox if protocol == "5" else "printmesh/n1/echo/res/echo", got.append)
    server_rt.start()
    client_rt.start()
    assert server_rt.wait_connected(5) and client_rt.wait_connected(5)
    time.sleep(0.2)

    def send(text: str, corr: bytes) -> None:
        v5 = {"response_topic": inbox, "correlation_data": corr} if protocol == "5" else {}
        client_rt.publish_absolute("printmesh/n1/echo/cmd/echo", json.dumps({"id": "same", "text": text}), qos=1, **v5)

    def answers(count: int) -> list:
        deadline = time.monotonic() + 5
        while len(got) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(got)

    send("first", b"c0")
    deadline = time.monotonic() + 5
    while not runs and time.monotonic() < deadline:
        time.sleep(0.02)
    send("repeat while running", b"c1")
    send("another repeat while running", b"c2")
    time.sleep(0.3)
    assert got == [], "nothing is answered before the command ends"
    gate.set()
    assert len(answers(3)) == 3
    send("repeat after the answer", b"c3")
    final = answers(4)
    time.sleep(0.3)
    assert runs == ["first"], "the command ran once"
    assert len(got) == 4, "one answer per request and repeat"
    bodies = [json.loads(m.payload) for m in final]
    assert all(b == bodies[0] for b in bodies) and bodies[0]["data"] == {"text": "first", "run": 1}
    if protocol == "5":
        assert sorted(m.correlation_data for m in final) == [b"c0", b"c1", b"c2", b"c3"]
    server.close()
    server_rt.stop()
    client_rt.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_an_answer_lost_in_a_broker_restart_is_asked_for_again_and_the_command_runs_once(broker, protocol):
    """The broker stops while a command runs; the server comes back first (it retries every 1 s,
    the requester every 3 s) and sends its queued answer to nobody: the requester's clean session
    kept nothing. Back, the requester sends its unanswered request again with the same id, and
    gets the first answer; the command ran once."""
    started, runs = threading.Event(), []

    def handler(request: EchoRequest) -> dict[str, object]:
        runs.append(request.text)
        started.set()
        time.sleep(0.5)  # the broker is down when it answers: the answer waits in the server's queue
        return {"text": request.text, "run": len(runs)}

    def runtime(name: str, delay: int) -> MqttRuntime:
        cfg = MqttConfig(host=broker.host, port=broker.port, protocol=protocol,  # type: ignore[arg-type]
                         reconnect={"min_delay": delay, "max_delay": delay})  # fmt: skip
        return MqttRuntime(cfg, root="printmesh", client_id=name)

    server_rt, client_rt = runtime("lost-server", 1), runtime("lost-client", 3)
    topics = Topics("printmesh", "n1")
    server = CommandServer(server_rt, topics, topics.component("echo"), [Command("echo", EchoRequest, handler)])
    server.attach()
    requester = Requester(client_rt)
    server_rt.start()
    client_rt.start()
    assert server_rt.wait_connected(5) and client_rt.wait_connected(5)
    time.sleep(0.2)
    requester.watch(topics.component("echo"), "echo")
    result: list[CommandResponse] = []
    caller = threading.Thread(target=lambda: result.append(
        requester.call(topics.component("echo"), "echo", {"text": "once"}, timeout=30)))  # fmt: skip
    caller.start()
    assert started.wait(5)
    broker.stop()
    time.sleep(4.5)
    broker.start()
    caller.join(30)
    assert result and result[0].ok and result[0].data == {"text": "once", "run": 1}, result
    assert runs == ["once"], "the command ran once"
    assert client_rt.connect_count == 2 and server_rt.connect_count == 2
    server.close()
    server_rt.stop()
    client_rt.stop()


def test_offline_queue_is_bounded_reports_drops_and_keeps_latest_retained(broker, observer):
    cfg = MqttConfig(host=broker.host, port=broker.port, queue_size=5)
    rt = MqttRuntime(cfg, "printmesh", "queued", Presence("q/agent/status", "agent", "test"))
    broker.stop()
    rt.start()
    for i in range(10):
        rt.publish("q/agent/event", json.dumps({"n": i}), qos=1)
    for i in range(3):
        rt.publish("q/agent/state", json.dumps({"v": i}), qos=1, retain=True)
    assert rt.queued == 6 and rt.dropped_total == 5
    broker.start()
    obs = Observer(make_runtime(broker, "obs2"))
    obs.runtime.subscribe("#", obs._record)
    obs.runtime.start()
    assert rt.wait_connected(10)
    status = obs.topic("printmesh/q/agent/status", where=lambda d: d["state"] == "online")
    assert status["dropped"] == 5
    obs.topic("printmesh/q/agent/event", where=lambda d: d["n"] == 9)
    time.sleep(0.3)
    events = [json.loads(m.payload)["n"] for m in obs.on("printmesh/q/agent/event")]
    assert events == [5, 6, 7, 8, 9], "oldest dropped, order kept"
    states = [json.loads(m.payload)["v"] for m in obs.on("printmesh/q/agent/state")]
    assert states == [2], "only the newest retained state is sent"
    rt.stop()
    obs.runtime.stop()


def test_subscription_survives_broker_restart(broker):
    got: list = []
    rt = make_runtime(broker, "resub")
    rt.subscribe("printmesh/x/#", got.append)
    rt.start()
    assert rt.wait_connected(5)
    broker.stop()
    broker.start()
    deadline = time.monotonic() + 8
    pub = make_runtime(broker, "pub2")
    pub.start()
    assert pub.wait_connected(5)
    while not got and time.monotonic() < deadline:
        if rt.connected:
            pub.publish("x/y", b"again", qos=1)
        time.sleep(0.2)
    assert got and got[0].payload == b"again"
    assert rt.connect_count == 2
    rt.stop()
    pub.stop()


def test_handler_exception_does_not_kill_the_network_thread(broker):
    got: list = []

    def boom(message):
        raise ValueError("handler bug")

    rt = make_runtime(broker, "robust")
    rt.subscribe("printmesh/b/#", boom)
    rt.subscribe("printmesh/b/#", got.append)
    rt.start()
    assert rt.wait_connected(5)
    time.sleep(0.2)
    rt.publish("b/1", b"x", qos=1)
    rt.publish("b/2", b"y", qos=1)
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m.payload for m in got] == [b"x", b"y"]
    rt.stop()


def test_subscriptions_are_restored_before_online_is_announced():
    """Whoever reacts to `online` must find the command topics live: the broker sees SUBSCRIBE first."""
    with LocalBroker(kind="mosquitto", extra=["log_type all", "log_dest stderr"]) as b:
        rt = MqttRuntime(
            MqttConfig(host=b.host, port=b.port), "printmesh", "ordered", Presence("o/echo/status", "echo", "t")
        )
        echo_server(rt, node="o", inline=True)
        rt.start()
        assert rt.wait_connected(5)
        time.sleep(0.3)
        rt.stop()
        log = b.log_path.read_text()
    subscribe_at = log.index("Received SUBSCRIBE from ordered")
    online_at = log.index("Received PUBLISH from ordered (d0, q1, r1, m")
    assert "printmesh/o/echo/status" in log[online_at : online_at + 200]
    assert subscribe_at < online_at


def test_a_shared_subscription_reaches_its_handler(broker, observer):
    from printmesh_core.mqtt import matches

    assert matches("$share/g/printmesh/+/printer/event", "printmesh/p1/printer/event")
    assert not matches("$share/g/printmesh/+/printer/event", "printmesh/p1/printer/state")
    rt = make_runtime(broker, "shared-sub")
    got: list[bytes] = []
    rt.subscribe("$share/g/printmesh/shared/topic", lambda m: got.append(m.payload), qos=1)
    rt.start()
    try:
        assert rt.wait_connected(5)
        time.sleep(0.2)
        observer.publish("printmesh/shared/topic", b"hello")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got == [b"hello"]
    finally:
        rt.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_state_sent_as_the_broker_went_away_never_overwrites_the_newer_one_sent_after(broker, protocol):
    """Paho resends unacknowledged messages after the connect callback, which flushes the newer queued state."""
    cfg = MqttConfig(host=broker.host, port=broker.port, protocol=protocol)  # type: ignore[arg-type]
    rt = MqttRuntime(cfg, "printmesh", "stale", Presence("s/agent/status", "agent", "test"))
    rt.start()
    assert rt.wait_connected(5)
    proc = broker._proc
    assert proc is not None
    proc.send_signal(signal.SIGSTOP)  # the broker takes the next packets into its socket but never answers
    rt.publish("s/agent/state", json.dumps({"phase": "held"}), qos=1, retain=True)
    rt.publish("s/agent/event", json.dumps({"n": 1}), qos=1)
    time.sleep(0.2)
    proc.kill()
    broker.stop()
    deadline = time.monotonic() + 10
    while rt.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not rt.connected, "the runtime saw its broker go"
    rt.publish("s/agent/state", json.dumps({"phase": "idle"}), qos=1, retain=True)  # queued: newer
    broker.start()
    assert rt.wait_connected(15)
    assert rt.flushed_on_connect >= {"printmesh/s/agent/state", "printmesh/s/agent/event"}, "the event is not lost"
    obs = Observer(make_runtime(broker, "late-reader"))
    obs.runtime.subscribe("printmesh/s/#", obs._record)
    obs.runtime.start()
    try:
        assert obs.topic("printmesh/s/agent/status")["state"] == "online"
        time.sleep(0.5)
        states = [json.loads(m.payload)["phase"] for m in obs.on("printmesh/s/agent/state")]
        assert states == ["idle"], states
    finally:
        rt.stop()
        obs.runtime.stop()
