import json

from pydantic import Field

from printmesh_core.commands import Command, CommandFailed, execute, parse
from printmesh_core.models import CommandRequest, CommandResponse
from printmesh_core.repeats import Dedupe


class MoveRequest(CommandRequest):
    x: float = Field(ge=0, le=200)


def _move(req: MoveRequest) -> dict:
    if req.x == 13:
        raise CommandFailed("unlucky", "refusing x=13")
    if req.x == 66:
        raise RuntimeError("driver exploded")
    return {"x": req.x}


MOVE = Command("move", MoveRequest, _move)


def test_valid_request_executes_and_echoes_id():
    rid, req = parse(MOVE, "move", b'{"id": "abc", "x": 10}')
    assert rid == "abc" and isinstance(req, MoveRequest)
    resp = execute(MOVE, req)
    assert resp.ok and resp.id == "abc" and resp.data == {"x": 10.0} and resp.error is None
    assert resp.ts > 0


def test_envelope_json_shape():
    doc = json.loads(CommandResponse(id="1", ok=True, data={"a": 1}).to_json())
    assert set(doc) == {"id", "ok", "data", "error", "ts"}


def test_invalid_json_has_no_id():
    rid, resp = parse(MOVE, "move", b"{nope")
    assert rid is None and isinstance(resp, CommandResponse)
    assert not resp.ok and resp.error.code == "invalid_json"


def test_non_object_payload():
    _, resp = parse(MOVE, "move", b"[1, 2]")
    assert isinstance(resp, CommandResponse) and resp.error.code == "invalid_request"


def test_schema_error_names_the_field_and_keeps_the_id():
    rid, resp = parse(MOVE, "move", b'{"id": "q", "x": 500}')
    assert rid == "q" and isinstance(resp, CommandResponse)
    assert resp.id == "q" and resp.error.code == "invalid_request"
    assert resp.error.details[0]["field"] == "x"
    assert "x:" in resp.error.message


def test_missing_id_is_a_schema_error():
    _, resp = parse(MOVE, "move", b'{"x": 1}')
    assert isinstance(resp, CommandResponse) and resp.error.code == "invalid_request" and resp.id is None


def test_unknown_field_is_rejected():
    _, resp = parse(MOVE, "move", b'{"id": "q", "x": 1, "y": 2}')
    assert isinstance(resp, CommandResponse) and resp.error.details[0]["field"] == "y"


def test_unknown_command():
    rid, resp = parse(None, "fly", b'{"id": "z"}')
    assert rid == "z" and isinstance(resp, CommandResponse) and resp.error.code == "unknown_command"
    assert "fly" in resp.error.message


def test_numeric_id_from_node_red_is_accepted_as_text():
    rid, req = parse(MOVE, "move", b'{"id": 42, "x": 1}')
    assert rid == "42" and isinstance(req, MoveRequest) and req.id == "42"


def test_handler_errors_become_error_responses():
    _, req = parse(MOVE, "move", b'{"id": "a", "x": 13}')
    resp = execute(MOVE, req)
    assert not resp.ok and resp.error.code == "unlucky" and resp.id == "a"
    _, req = parse(MOVE, "move", b'{"id": "b", "x": 66}')
    resp = execute(MOVE, req)
    assert not resp.ok and resp.error.code == "failed" and "driver exploded" in resp.error.message


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_dedupe_within_window_then_forgets():
    clock = FakeClock()
    d = Dedupe(window=60, clock=clock)
    assert d.first_time(("move", "1"))
    assert not d.first_time(("move", "1"))
    assert d.first_time(("hold", "1")), "same id on another command is a different request"
    clock.t += 59
    assert not d.first_time(("move", "1"))
    clock.t += 2
    assert d.first_time(("move", "1")), "forgotten after the window"


def test_dedupe_is_bounded():
    d = Dedupe(window=3600, max_entries=3, clock=FakeClock())
    for i in range(4):
        assert d.first_time(("c", str(i)))
    assert d.first_time(("c", "0")), "oldest entry evicted when full"
    assert not d.first_time(("c", "3"))


def test_dedupe_window_zero_disables():
    d = Dedupe(window=0)
    assert d.first_time(("c", "1")) and d.first_time(("c", "1"))
