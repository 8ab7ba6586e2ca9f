"""Malformed variants of every message printmesh reads, drawn with hypothesis from the contract.

``targets`` lists every route of ``printmesh_core.contract`` with the component that owns it (by
the route's name, or a command's request model), so a route added to the contract is fuzzed
without touching this file; one that cannot be placed fails the fuzz test. ``variants`` draws,
for one target, documents shaped like its model (``shaped``: the model's own fields, types
and nesting) and then breaks them (``broken``): a value of the wrong type, a string posing as
a number, a boolean posing as an integer, NaN or infinity, a number out of every range, a
nesting far deeper than any reader allows, a payload over its size limit, a field removed,
unknown fields, or no JSON object at all. Only variants that the contract itself refuses are
kept (``refused``): a dangerous command (hold, move, pause, cancel, release, gcode, abort,
capture) is only ever sent malformed, and a status is never a valid ``offline``.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from printmesh_core import contract
from printmesh_core.commands import Command, parse
from printmesh_core.contract import CommandRoute, RawRoute, Route, Unreadable
from printmesh_core.inbound import JSON_LIMIT
from printmesh_core.models.envelope import CommandResponse

PREFIXES = {
    "PRINTER_": "printer",
    "CAMERA_": "camera",
    "HOST_": "host",
    "SENSOR_": "sensors",
    "COORDINATOR_": "coordinator",
}
MODULES = {
    "printer_commands": "printer",
    "camera": "camera",
    "host": "host",
    "sensors": "sensors",
    "coordinator": "coordinator",
}
COMPONENTS = ("printer", "camera", "host", "sensors", "coordinator")
# Answers to a requester (the coordinator) travel outside the contract's routes, in the reply
# namespace (or on res/<name>): fuzzed as one more target, read as a CommandResponse.
ANSWERS = Route(levels=("reply",), retain=False, model=CommandResponse)
HUGE = "__HUGE__"  # replaced by a literal json.dumps cannot write (1e400, a 40-digit integer)


@dataclass(frozen=True)
class Target:
    name: str  # the contract's name for it
    component: str
    route: Route[Any] | RawRoute | CommandRoute[Any]
    presence: bool = False  # read through read_presence (a status or an availability)


def targets() -> list[Target]:
    """Every route of the contract, placed on its component (STATUS on every one)."""
    out: list[Target] = []
    unplaced: list[str] = []
    for name, value in vars(contract).items():
        if isinstance(value, CommandRoute):
            module = value.request.__module__.rsplit(".", 1)[-1]
            if module not in MODULES:
                unplaced.append(name)
                continue
            out.append(Target(name, MODULES[module], value))
        elif isinstance(value, RawRoute):
            presence = value is contract.STATUS or value.levels[-1:] == ("availability",)
            if value is contract.STATUS:
                out += [Target(name, c, value, True) for c in COMPONENTS]
                continue
            component = next((c for p, c in PREFIXES.items() if name.startswith(p)), None)
            if component is None:
                unplaced.append(name)
                continue
            out.append(Target(name, component, value, presence))
    assert not unplaced, f"routes the fuzz test cannot place on a component: {unplaced}"
    return [*out, Target("ANSWERS", "coordinator", ANSWERS)]


# ------------------------------------------------------------------ documents shaped like a model
def shaped(annotation: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Plausible JSON for ``annotation``: a model's own fields, types and nesting."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return shaped(typing.get_args(annotation)[0], depth)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        required = {k: shaped(f.annotation, depth + 1) for k, f in fields.items() if f.is_required()}
        optional = {k: shaped(f.annotation, depth + 1) for k, f in fields.items() if not f.is_required()}
        return st.fixed_dictionaries(required, optional=optional)
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return st.one_of([shaped(a, depth) for a in typing.get_args(annotation)])
    if origin is list:
        return st.lists(shaped(typing.get_args(annotation)[0], depth + 1), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=8), shaped(typing.get_args(annotation)[1], depth + 1), max_size=2)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        float: st.floats(-500, 500, allow_nan=False),
        int: st.integers(0, 1000),
        str: st.text(max_size=16),
        bool: st.booleans(),
        type(None): st.none(),
    }
    if annotation in simple:
        return simple[annotation]
    return st.none() if depth > 3 else st.one_of(st.none(), st.integers(), st.text(max_size=8))  # Any


# ------------------------------------------------------------------ and broken
def _hostile(limit: int) -> st.SearchStrategy[Any]:
    """A value no field of ours accepts as it is: wrong type, non-finite, out of range, too deep or too long."""
    deep = st.integers(17, 3000).map(lambda d: {"__deep__": d})  # written as brackets by ``encode``
    return st.one_of(
        st.sampled_from(["100", "1.5", "NaN", "true", "", "0x10"]),  # strings posing as numbers
        st.sampled_from([True, False]),  # booleans posing as integers
        st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e20, -1e20, 1e300, HUGE]),
        st.sampled_from([[], [1, 2], {}, {"x": 1}, None]),
        deep,
        st.just("x" * (limit + 1)),
    )


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = _set(copy[path[0]], path[1:], value)
    return copy


def _drop(doc: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        copy = dict(doc) if isinstance(doc, dict) else list(doc)
        del copy[path[0]]
        return copy
    return _set(doc, path[:1], _drop(doc[path[0]], path[1:]))


def encode(doc: Any) -> bytes:
    text = json.dumps(doc, allow_nan=True)
    text = text.replace(f'"{HUGE}"', "1e400")
    while '{"__deep__": ' in text:  # a nesting json.dumps would recurse on: written as text
        head, rest = text.split('{"__deep__": ', 1)
        depth, tail = rest.split("}", 1)
        text = head + "[" * int(depth) + "]" * int(depth) + tail
    return text.encode()


@st.composite
def broken(draw: st.DrawFn, model: type[BaseModel], limit: int) -> bytes:
    """One malformed payload of ``model``."""
    doc = draw(shaped(model))
    kind = draw(st.sampled_from(["replace", "replace", "replace", "drop", "extra", "whole"]))
    paths = _paths(doc)
    if kind == "whole" or not paths:
        whole = st.sampled_from([b"[]", b"null", b'"text"', b"42", b"{", b"\xff\xfe\x00", b"{}", b"NaN"])
        return draw(st.one_of(whole, _hostile(limit).map(encode)))
    if kind == "drop":
        return encode(_drop(doc, draw(st.sampled_from(paths))))
    if kind == "extra":  # unknown fields alone are tolerated: broken elsewhere too
        doc = {**doc, draw(st.text(min_size=1, max_size=8)): draw(_hostile(limit))}
    return encode(_set(doc, draw(st.sampled_from(paths)), draw(_hostile(limit))))


# ------------------------------------------------------------------ only what the contract refuses
def refused(target: Target, payload: bytes) -> bool:
    """The reader refuses ``payload``: sending it must change nothing but a counter."""
    route = target.route
    if isinstance(route, CommandRoute):
        _, parsed = parse(Command(route.name, route.request, lambda r: None), route.name, payload)
        return isinstance(parsed, CommandResponse)
    if target.presence and contract.read_presence(payload) is not None:
        return False
    if isinstance(route, Route):
        try:
            route.read(payload)
        except Unreadable:
            return True
        return False
    return True  # raw: the test sends junk only where nobody acts on it (see ``variants``)


def variants(target: Target) -> st.SearchStrategy[bytes]:
    route = target.route
    if isinstance(route, CommandRoute):
        return broken(route.request, JSON_LIMIT)
    if isinstance(route, Route):
        return broken(route.model, route.limit)
    # raw routes: junk bytes (an image of nobody's request; a press the test sends only where it is refused)
    return st.one_of(
        st.binary(max_size=64), st.just(b"x" * (route.limit + 1)) if route.limit < JSON_LIMIT else st.nothing()
    )


def draw_all(examples: int) -> dict[str, list[bytes]]:
    """For every target (keyed ``component:NAME``), up to ``examples`` malformed variants.

    Reproducible: derandomized (a fixed seed) with no example database, so CI sends the same."""
    out: dict[str, list[bytes]] = {}
    for target in targets():
        out[f"{target.component}:{target.name}"] = _draw(target, examples)
    return out


def _draw(target: Target, examples: int) -> list[bytes]:
    got: list[bytes] = []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        payload = data.draw(variants(target))
        assume(refused(target, payload))
        got.append(payload)

    draw()
    return got
