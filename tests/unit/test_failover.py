"""Failing over between the brokers of ``mqtt.hosts`` (issue 14 §2): which broker next, after how long.

Pure decisions (``printmesh_core.failover``), the config that lists the brokers, and the
runtime's wiring of a decision into paho's next reconnect (no socket is opened: paho's
``connect_async`` only records where to go).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from manual_clock import ManualClock
from pydantic import ValidationError

from printmesh_core.config import AgentSettings, ConfigError, MqttConfig, ReconnectConfig, load_settings
from printmesh_core.failover import Failover, FailoverState, backoff, next_attempt
from printmesh_core.mqtt import MqttRuntime, Presence
from printmesh_core.mqtt_settings import Broker

FAST = ReconnectConfig(min_delay=1, max_delay=2)
SLOW = ReconnectConfig(min_delay=1, max_delay=3)
THREE = (Broker("n1", 1883), Broker("n2", 1883), Broker("n3", 1884))


def run(outcomes: list[str], brokers: int, reconnect: ReconnectConfig = FAST) -> list[tuple[int, int]]:
    """(broker index, delay) of each attempt after each outcome, from broker 0."""
    state, out = FailoverState(), []
    for outcome in outcomes:
        state, attempt = next_attempt(state, outcome, brokers, reconnect)  # type: ignore[arg-type]
        out.append((attempt.index, attempt.delay))
    return out


def test_a_lost_broker_is_followed_by_the_next_one_at_once() -> None:
    assert run(["lost"], 3) == [(1, 0)]
    assert run(["lost", "lost", "lost"], 3) == [(1, 0), (2, 0), (0, 0)], "round the list, never stuck on one"


def test_a_round_of_failures_backs_off_and_the_round_within_it_does_not() -> None:
    # lost n1: n2 at once; n2 fails: n3 at once; n3 fails: n1 at once (it may be back);
    # n1 fails too: a whole round failed, wait min_delay; the next round doubles, up to max_delay
    got = run(["lost"] + ["failed"] * 9, 3, SLOW)
    assert got == [(1, 0), (2, 0), (0, 0), (1, 1), (2, 0), (0, 0), (1, 2), (2, 0), (0, 0), (1, 3)]


def test_a_connection_resets_the_backoff() -> None:
    state, _ = next_attempt(FailoverState(), "failed", 2, FAST)
    state, _ = next_attempt(state, "failed", 2, FAST)
    assert state.failed == 2
    failover = Failover(THREE[:2], FAST)
    failover.state = state
    failover.connected()
    assert failover.state == FailoverState(0, 0)
    assert failover.after("failed").delay == 0, "a new round after a connection"


def test_one_broker_keeps_todays_backoff() -> None:
    # the broker that dropped us is the only one: min_delay first, then doubling to the ceiling
    assert run(["lost", "failed", "failed", "failed", "failed"], 1, SLOW) == [(0, 1), (0, 1), (0, 2), (0, 3), (0, 3)]
    assert run(["failed", "failed", "failed"], 1, FAST) == [(0, 1), (0, 2), (0, 2)], "start-up: as paho did"


def test_backoff_is_bounded_however_long_the_outage() -> None:
    assert [backoff(n, SLOW) for n in (0, 1, 2, 3, 10, 10_000)] == [0, 1, 2, 3, 3, 3]


def test_the_log_says_each_failover_and_only_some_failed_attempts() -> None:
    failover = Failover(THREE, FAST)
    lost = failover.after("lost")
    assert (lost.broker, lost.delay) == (THREE[1], 0)
    assert lost.warning == "lost broker n1:1883: failing over to n2:1883"
    warnings = [failover.after("failed").warning for _ in range(40)]
    said = [i + 1 for i, w in enumerate(warnings) if w]
    assert said == [1, 20, 40], said
    assert warnings[0] == "cannot reach broker n2:1883 (attempt 1); next: n3:1884 in 0s"
    assert failover.switches == 41
    single = Failover(THREE[:1], FAST)
    assert single.after("lost").warning is None, "one broker: the disconnect line says it all"


# ------------------------------------------------------------------ the config
def test_hosts_in_every_form_become_brokers_in_order() -> None:
    cfg = MqttConfig(hosts=["127.0.0.1:4001", "localhost", {"host": "::1", "port": 4003}, "[::1]:4004"], port=1884)
    expected = (Broker("127.0.0.1", 4001), Broker("localhost", 1884), Broker("::1", 4003), Broker("::1", 4004))
    assert cfg.brokers == expected
    assert cfg.where == "127.0.0.1:4001, localhost:1884, [::1]:4003, [::1]:4004"
    assert MqttConfig(host="127.0.0.2", port=1885).brokers == (Broker("127.0.0.2", 1885),), "the single-broker form"


@pytest.mark.parametrize(
    ("hosts", "loc", "says"),
    [
        (["127.0.0.1:1883", "127.0.0.1:x"], ("hosts", 1), "must be a number"),
        (["127.0.0.1:1883", "127.0.0.1:"], ("hosts", 1), "no port"),
        (["127.0.0.1:1883", "127.0.0.1:70000"], ("hosts", 1, "port"), "less than or equal to 65535"),
        (["127.0.0.1:1883", "a host"], ("hosts", 1, "host"), "not a host name"),
        ([{"host": "127.0.0.1", "prot": 1}], ("hosts", 0, "prot"), "Extra inputs"),
    ],
)
def test_a_bad_entry_is_refused_naming_it(hosts: list[object], loc: tuple[object, ...], says: str) -> None:
    with pytest.raises(ValidationError) as err:
        MqttConfig(hosts=hosts)  # type: ignore[arg-type]
    first = err.value.errors()[0]
    assert first["loc"] == loc and says in first["msg"], err.value.errors()


def test_a_config_file_error_names_the_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("PRINTMESH_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "c.yaml"
    path.write_text("mqtt:\n  hosts: ['127.0.0.1:1883', '127.0.0.1:nope']\n")
    with pytest.raises(ConfigError, match=r"mqtt\.hosts\.1: .*'127\.0\.0\.1:nope': the port"):
        load_settings(AgentSettings, path)
    path.write_text("mqtt:\n  host: 127.0.0.1\n  hosts: ['127.0.0.1:1883']\n")
    with pytest.raises(ConfigError, match=r"mqtt: .*either mqtt\.hosts .* or mqtt\.host"):
        load_settings(AgentSettings, path)
    path.write_text("mqtt:\n  hosts: ['127.0.0.1:1883', '127.0.0.1']\n")
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1:1883 more than once"):
        load_settings(AgentSettings, path)


def test_hosts_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("PRINTMESH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PRINTMESH_MQTT__HOSTS", "127.0.0.1:4001,127.0.0.2:4002")
    monkeypatch.setenv("PRINTMESH_MQTT__MAX_SUBSCRIBE_QOS", "0")
    mqtt = load_settings(AgentSettings, None).mqtt
    assert mqtt.brokers == (Broker("127.0.0.1", 4001), Broker("127.0.0.2", 4002)) and mqtt.max_subscribe_qos == 0
    monkeypatch.setenv("PRINTMESH_MQTT__HOSTS", '["127.0.0.1:4001", {"host": "127.0.0.3"}]')
    assert load_settings(AgentSettings, None).mqtt.where == "127.0.0.1:4001, 127.0.0.3:1883"


def test_an_account_is_needed_if_any_broker_of_the_list_is_another_machine() -> None:
    with pytest.raises(ValidationError) as err:
        MqttConfig(hosts=["127.0.0.1:1883", "nats2.lan:1883"])
    assert err.value.errors()[0]["loc"] == ("username",) and "'nats2.lan'" in str(err.value)
    assert MqttConfig(hosts=["127.0.0.1:1883", "nats2.lan"], username="farm").username == "farm"
    assert MqttConfig(hosts=["127.0.0.1:1883", "[::1]:1884"]).username is None


def test_max_subscribe_qos_is_checked() -> None:
    assert MqttConfig().max_subscribe_qos == 2
    with pytest.raises(ValidationError) as err:
        MqttConfig(max_subscribe_qos=3)
    assert err.value.errors()[0]["loc"] == ("max_subscribe_qos",)


# ------------------------------------------------------------------ the runtime's wiring
def test_the_runtime_points_paho_at_the_next_broker_with_the_decided_wait() -> None:
    cfg = MqttConfig(hosts=["127.0.0.1:4001", "127.0.0.1:4002", "127.0.0.1:4003"], protocol="3.1.1")
    rt = MqttRuntime(cfg, "printmesh", "unit-failover", Presence("n/x/status", "x", "t"))
    client = rt._client  # paho's: connect_async only records host, port and keepalive
    rt._client.connect_async("127.0.0.1", 4001, cfg.keepalive)
    assert rt.broker == "127.0.0.1:4001"
    rt._on_connect_fail(client, None)
    assert (client.host, client.port, rt.broker) == ("127.0.0.1", 4002, "127.0.0.1:4002")
    assert (client._reconnect_min_delay, client._reconnect_max_delay) == (0, 0), "the next one at once"
    rt._on_connect_fail(client, None)
    rt._on_connect_fail(client, None)
    assert client.port == 4001 and client._reconnect_min_delay == cfg.reconnect.min_delay, "a failed round waits"
    rt._stopping = True
    rt._on_connect_fail(client, None)
    assert client.port == 4001, "a stopping runtime goes nowhere"


def test_subscriptions_ask_for_at_most_max_subscribe_qos() -> None:
    capped = MqttRuntime(MqttConfig(protocol="3.1.1", max_subscribe_qos=0), "printmesh", "unit-cap")
    assert [capped._options(q) for q in (0, 1, 2)] == [0, 0, 0]
    plain = MqttRuntime(MqttConfig(protocol="3.1.1"), "printmesh", "unit-plain")
    assert [plain._options(q) for q in (0, 1, 2)] == [0, 1, 2]
    v5 = MqttRuntime(MqttConfig(max_subscribe_qos=1), "printmesh", "unit-v5")
    assert v5._options(2).QoS == 1 and v5._options(2).retainAsPublished


def test_an_attempt_held_and_then_failed_is_followed_by_the_next_broker_without_backoff() -> None:
    # a NATS node holds a CONNECT for js_api_timeout (1 s) while JetStream elects the session stream's leader,
    # then closes it: the cluster is up, the attempt paced itself; a backoff would only delay the first attempt
    # after the election. The dead node (refused at once) stays a plain failure.
    clock = ManualClock(100.0)
    failover = Failover(THREE, FAST, clock)
    delays = [failover.after("lost").delay]  # n1 died: n2 at once
    for _ in range(3):
        clock.now += 1.0  # n2 held it 1 s
        delays.append(failover.after("failed").delay)  # -> n3
        clock.now += 1.0  # n3 held it 1 s
        delays.append(failover.after("failed").delay)  # -> n1
        clock.now += 0.001  # n1 refused at once
        delays.append(failover.after("failed").delay)  # -> n2
    assert delays == [0] * 10, delays
    assert failover.stalls == 6 and failover.state.failed == 1
    assert failover.current == THREE[1]


def test_quick_failures_still_back_off_after_a_round() -> None:
    clock = ManualClock(100.0)
    failover = Failover(THREE, SLOW, clock)
    delays = []
    for _ in range(6):
        clock.now += 0.01  # refused at once (no listener, a refused CONNACK): a tight loop without backoff
        move = failover.after("failed")
        delays.append(move.delay)
        clock.now += move.delay
    assert delays == [0, 0, 1, 0, 0, 2], delays
    assert failover.stalls == 0


def test_a_stall_is_said_once_and_then_every_20th_and_a_connection_resets_the_count() -> None:
    clock = ManualClock(100.0)
    failover = Failover(THREE[:2], FAST, clock)
    said = []
    for _ in range(40):
        clock.now += 1.0
        said.append(failover.after("failed").warning)
    assert [i + 1 for i, w in enumerate(said) if w] == [1, 20, 40]
    assert said[0] == "broker n1:1883 held the connection without accepting it (1 so far); next: n2:1883 at once"
    failover.connected()
    assert failover.stalls == 0 and failover.state.failed == 0
