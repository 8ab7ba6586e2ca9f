"""Every class of refused input, without a broker: screened before parsing, or refused by the strict read.

The repros of issue 13 are here as pure cases (a `held` event with started_at 1e20, -1e20 or NaN,
or z NaN; a job with started_at NaN; strings as numbers; `"layer": true`; a request nested 1,000
deep); tests/integration/test_inbound_mesh.py sends the same to the real processes.
"""

from __future__ import annotations

import json
import logging
import threading

import pytest

from printmesh_coordinator.link import parse_event
from printmesh_core import contract
from printmesh_core.commands import Command, parse
from printmesh_core.contract import Unreadable
from printmesh_core.inbound import (
    IMAGE_LIMIT,
    JSON_LIMIT,
    LAYERS_LIMIT,
    MAX_DEPTH,
    Health,
    Rejected,
    recover_id,
    screen,
    too_deep,
)
from printmesh_core.messages import Message
from printmesh_core.models.envelope import CommandResponse
from printmesh_core.models.printer import HoldRequest, MoveRequest

HELD_BODY = {"hold_id": 3, "layer": 10, "z": 2.0, "origin": {"x": 1, "y": 2, "z": 1.8}, "path": "a.gcode",
             "started_at": 1_700_000_000.5}  # fmt: skip


def held(**body: object) -> bytes:
    doc = {"ts": 1_700_000_001.0, "event": "held", "source": "printmesh", "payload": {**HELD_BODY, **body}}
    return json.dumps(doc).encode()


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def deep_request(depth: int = 1000, rid: str = "deep-1") -> bytes:
    return f'{{"id": "{rid}", "plan": {{"layers": {nested(depth)}}}}}'.encode()


# ------------------------------------------------------------------ screening the raw bytes
def test_nesting_is_measured_without_a_parser_and_brackets_in_strings_do_not_count():
    assert not too_deep(nested(MAX_DEPTH).encode()) and too_deep(nested(MAX_DEPTH + 1).encode())
    assert not too_deep(json.dumps({"s": "[" * 5000, "t": '{{]]\\"[['}).encode())
    assert too_deep(b"[" * 5000), "unbalanced brackets are refused too (json would fail or recurse on them)"
    with pytest.raises(Rejected, match="deeper than 16"):
        screen(nested(100_000).encode() + b"", limit=10**7)


def test_over_long_payloads_are_refused_by_the_route_limit():
    with pytest.raises(Rejected, match="over the 262144-byte limit"):
        screen(b'{"a": "' + b"x" * JSON_LIMIT + b'"}')
    table = {"source": "fallback", "file_size": 1, "total_layers": 0, "total_height": 0,
             "layers": [], "generator": "x" * (JSON_LIMIT * 2)}  # fmt: skip
    assert contract.PRINTER_LAYERS.read(json.dumps(table)).generator is not None, "a layer table has its own bound"
    with pytest.raises(Unreadable, match="limit"):
        contract.PRINTER_JOB.read(json.dumps({"file_name": "x" * JSON_LIMIT}))
    assert contract.PRINTER_LAYERS.limit == LAYERS_LIMIT and contract.CAMERA_IMAGE.limit == IMAGE_LIMIT


def test_non_finite_tokens_are_refused_but_the_words_inside_strings_are_not():
    for raw in (b'{"x": NaN}', b'{"x": Infinity}', b'{"x": [1, -Infinity]}'):
        with pytest.raises(Rejected, match="non-finite"):
            screen(raw)
    screen(b'{"name": "NaN Infinity"}')


def test_the_id_of_a_refused_request_is_recovered_from_the_top_level_only():
    assert recover_id(deep_request(1000, "abc")) == "abc"
    assert recover_id(b'{"x": {"id": "inner"}, "id": "outer", "y": ' + nested(500).encode() + b"}") == "outer"
    assert recover_id(b'{"id": 42, "x": "y"}') == "42"
    assert recover_id(b'{"id": 4.5, "x": "y"}') is None and recover_id(b'{"x": "id"}') is None
    assert recover_id(b'{"id": "' + b"x" * 300 + b'"}') is None


# ------------------------------------------------------------------ the strict read of another process's message
@pytest.mark.parametrize(
    "body",
    [{"started_at": 1e20}, {"started_at": -1e20}, {"started_at": 1e400}, {"z": 1e20},
     {"origin": {"x": 1e300, "y": 0, "z": 0}}, {"layer": True}, {"layer": "10"}, {"layer": 10.0}, {"layer": 0},
     {"hold_id": "3"}, {"z": "2.0"}, {"z": True}],
)  # fmt: skip
def test_a_held_event_out_of_range_or_of_the_wrong_type_is_unreadable(body):
    with pytest.raises(Unreadable):
        contract.PRINTER_HELD.read(held(**body))
    assert parse_event(held(**body)) is None


def test_nan_in_a_held_event_or_a_job_is_unreadable():
    for raw in (held().replace(b"1700000000.5", b"NaN"), held().replace(b'"z": 2.0', b'"z": NaN')):
        with pytest.raises(Unreadable, match="non-finite"):
            contract.PRINTER_HELD.read(raw)
    with pytest.raises(Unreadable, match="non-finite"):
        contract.PRINTER_JOB.read(b'{"ts": 1, "file_name": "a.gcode", "started_at": NaN}')
    with pytest.raises(Unreadable):
        contract.PRINTER_JOB.read(b'{"ts": 1, "file_name": "a.gcode", "started_at": 1e20}')


def test_a_valid_held_event_still_reads_and_unknown_fields_are_ignored():
    doc = json.loads(held())
    doc["payload"]["newer"] = {"deep": [1, 2]}
    doc["newest"] = True
    assert contract.PRINTER_HELD.read(json.dumps(doc)).payload.started_at == 1_700_000_000.5


def test_missing_fields_and_junk_are_unreadable():
    for raw in (b'{"ts": 1, "event": "held", "source": "printmesh"}', b"[]", b"null", b'"held"', b"\xff\xfe", b""):
        with pytest.raises(Unreadable):
            contract.PRINTER_HELD.read(raw)


def test_an_unreadable_hold_body_on_the_event_topic_is_refused_not_ignored():
    event = contract.PRINTER_EVENT.read(held(started_at=1e20))
    from printmesh_coordinator.link import event_input

    with pytest.raises(Unreadable):
        event_input(event)


# ------------------------------------------------------------------ requests
def command(model: type) -> Command:
    return Command("x", model, lambda request: {})


@pytest.mark.parametrize(
    "raw",
    [b'{"id": "m1", "x": "100"}', b'{"id": "m1", "x": true}', b'{"id": "m1", "x": 1e400}', b'{"id": "m1", "x": NaN}',
     b'{"id": "m1", "feedrate": "3000"}', b'{"id": "m1", "hold_id": true}', b'{"id": "m1", "x": 1, "z": [1]}'],
)  # fmt: skip
def test_a_move_with_strings_booleans_or_non_finite_numbers_is_an_invalid_request_with_its_id(raw):
    rid, parsed = parse(command(MoveRequest), "move", raw)
    assert isinstance(parsed, CommandResponse) and parsed.error is not None, parsed
    assert rid == "m1" and parsed.id == "m1" and parsed.error.code == "invalid_request"


def test_layer_true_does_not_arm_layer_one():
    _, parsed = parse(command(HoldRequest), "hold", b'{"id": "h1", "layer": true}')
    assert isinstance(parsed, CommandResponse) and parsed.error is not None and parsed.error.code == "invalid_request"
    _, parsed = parse(command(HoldRequest), "hold", b'{"id": "h1", "plan": {"layers": [true]}}')
    assert isinstance(parsed, CommandResponse) and parsed.error is not None
    _, ok = parse(command(HoldRequest), "hold", b'{"id": "h1", "plan": {"layers": [5, 10]}, "holder": "a/b"}')
    assert isinstance(ok, HoldRequest) and ok.plan is not None and ok.plan.layers == [5, 10]


def test_a_request_nested_1000_deep_is_answered_invalid_request_before_any_parser():
    rid, parsed = parse(command(HoldRequest), "hold", deep_request(1000, "d1"))
    assert isinstance(parsed, CommandResponse) and parsed.error is not None
    assert (
        rid == "d1"
        and parsed.id == "d1"
        and parsed.error.code == "invalid_request"
        and "deeper" in parsed.error.message
    )
    rid, parsed = parse(None, "nosuch", deep_request(1000, "d2"))
    assert isinstance(parsed, CommandResponse) and parsed.id == "d2" and parsed.error is not None


def test_over_long_requests_and_giant_integers_are_answered_not_raised():
    _, parsed = parse(command(MoveRequest), "move", b'{"id": "l1", "pad": "' + b"x" * JSON_LIMIT + b'"}')
    assert isinstance(parsed, CommandResponse) and parsed.error is not None
    assert parsed.id == "l1" and parsed.error.code == "invalid_request"
    _, parsed = parse(command(MoveRequest), "move", b'{"id": "g1", "x": ' + b"9" * 5000 + b"}")
    assert isinstance(parsed, CommandResponse) and parsed.error is not None and not parsed.ok


# ------------------------------------------------------------------ counting and the bounded log
def test_health_counts_refusals_and_failures_and_logs_one_line_per_subscription_per_interval(caplog):
    now = [0.0]
    health = Health(interval=10.0, clock=lambda: now[0])
    message = Message("printmesh/p/printer/held", b"junk", 1, False)

    def refuse(m: Message) -> None:
        raise Unreadable("junk")

    def explode(m: Message) -> None:
        raise OverflowError("timestamp out of range")

    with caplog.at_level(logging.WARNING, logger="printmesh.inbound"):
        for _ in range(100):
            health.handle("+/printer/held", refuse, message)
        health.handle("+/printer/job", refuse, message)
        for _ in range(5):
            health.handle("+/printer/held", explode, message)
        now[0] = 11.0
        health.handle("+/printer/held", refuse, message)
    assert health.rejected == 102 and health.failed == 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines  # held refused, job refused, held failed, held refused again after 10 s
    assert "99 more refused on +/printer/held" in lines[-1] and "printmesh/p/printer/held" in lines[-1]
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1 and failed[0].exc_info is not None, "the traceback of the first failure is kept"


def test_health_asks_for_a_status_republication_once_per_burst():
    pushed = threading.Event()
    calls: list[int] = []
    health = Health()

    def on_change() -> None:
        calls.append(health.rejected)
        pushed.set()

    health.on_change = on_change
    for _ in range(50):
        health.reject("f", "t", "r")
    assert pushed.wait(5)
    assert len(calls) == 1 and calls[0] >= 1


# ------------------------------------------------------------------ the coordinator loop's guard
def test_the_coordinator_loop_survives_an_input_that_raises_and_logs_its_topic(monkeypatch, tmp_path, caplog):
    from printmesh_coordinator import agent as coordinator_agent
    from printmesh_coordinator.config import CoordinatorSettings
    from printmesh_coordinator.messages import Held

    printer = {"node": "octo", "plan": {"every": 5}, "cameras": [{"node": "cam", "camera": "bed"}]}
    settings = CoordinatorSettings.model_validate(
        {"node_id": "c1", "coordinator": {"captures_dir": str(tmp_path), "printers": [printer], "pages": False}}
    )
    coordinator = coordinator_agent.CoordinatorAgent(settings)
    real_decide = coordinator_agent.decide

    def decide(state, message, now):  # a bug the contract did not catch, as OverflowError was
        if isinstance(message, Held):
            raise OverflowError("timestamp out of range for platform time_t")
        return real_decide(state, message, now)

    monkeypatch.setattr(coordinator_agent, "decide", decide)
    bad = Held(1, 5, 1.0, None, "a.gcode", 1e20, 1.0)
    message = Message("printmesh/octo/printer/held", b"{}", 1, False)
    health = coordinator.runtime.health
    with caplog.at_level(logging.ERROR, logger="printmesh.inbound"):
        health.handle("+/printer/held", lambda m: coordinator.deliver("octo", bad), message)
        coordinator.step(0.1)
        coordinator.step(0.05)  # the loop carries on
    assert health.failed == 1
    assert "printmesh/octo/printer/held" in caplog.text and "OverflowError" in caplog.text
    assert coordinator.machines["octo"] is not None
