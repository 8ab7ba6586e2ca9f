"""Layer marks written at upload, read back by the scanner, and the hooks that follow them.

Expectations come from the fixtures' own tables (written from the slicers' settings) and from
reading the files here line by line, not from the writer under test.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from printing import FIXTURES, marks_in

from octoprint_printmesh.comm_hooks import CommHooks, HookSwitch
from octoprint_printmesh.gcode import Modes
from octoprint_printmesh.hold.driver import HoldDriver
from octoprint_printmesh.hold.types import HoldConfig
from octoprint_printmesh.layers.scanner import scan_seekable
from octoprint_printmesh.layers.upload_marks import write_marked

FILES = sorted(p.stem for p in FIXTURES.glob("*.gcode"))
TRACKED = re.compile(rb"^[ \t]*(G90|G91|M82|M83|G28|M18|M84|M112|M106|M107)\b")


def marked(data: bytes) -> bytes:
    out = io.BytesIO()
    write_marked(io.BytesIO(data), out, scan_seekable(io.BytesIO(data)).table)
    return out.getvalue()


@pytest.mark.parametrize("name", FILES)
def test_a_mark_precedes_every_layers_first_line_and_nothing_else_changes(name: str) -> None:
    data = (FIXTURES / f"{name}.gcode").read_bytes()
    stored = marked(data)
    marks, unmarked = marks_in(stored)
    assert unmarked == data or (unmarked == data + b"\n" and TRACKED.match(data.splitlines()[-1]))
    expected = FIXTURES / f"{name}.json"
    doc = json.loads(expected.read_text()) if expected.exists() else {}
    if all("offset" in r for r in doc.get("layers", [None])):  # the layer starts the slicer's settings give
        assert [(m.layer, m.original_offset) for m in marks] == [(r["layer"], r["offset"]) for r in doc["layers"]]
    table = scan_seekable(io.BytesIO(stored)).table
    assert table.marked and [x.file_pos for x in table.layers] == [m.file_pos for m in marks]
    assert marked(stored) == stored, "marking a marked file changes nothing"


@pytest.mark.parametrize("name", ["prusa_variable", "cura_zhop_purge", "prusa_crlf"])
def test_every_tracked_line_is_echoed_and_each_layer_mark_carries_the_feed_rate_set_before_it(name: str) -> None:
    data = (FIXTURES / f"{name}.gcode").read_bytes()
    lines = marked(data).splitlines()
    feed = None
    for i, line in enumerate(lines):
        if line.startswith(b"@printmesh layer"):
            assert (line.split()[3:] or [None])[0] == (b"F" + feed if feed else None), line
            continue
        if line.startswith(b"@printmesh"):
            continue
        code = line.split(b";", 1)[0].strip()
        if m := re.match(rb"G[0-3]\b.*?F([\d.]+)", code):
            feed = m.group(1)
        if TRACKED.match(line):
            assert lines[i + 1] == b"@printmesh track " + code, (line, lines[i + 1])


def test_marks_that_no_longer_match_the_layers_are_not_followed() -> None:
    stored = marked((FIXTURES / "prusa_variable.gcode").read_bytes())
    first = stored.index(b"@printmesh layer 2 ")
    broken = stored[:first] + stored[stored.index(b"\n", first) + 1 :]  # one layer's mark lost
    table = scan_seekable(io.BytesIO(broken)).table
    assert not table.marked and table.total_layers == 20


class Comm:
    def __init__(self) -> None:
        self.before, self.ours, self.after = object(), object(), object()
        self._gcode_hooks = {"queuing": {"a": self.before, "printmesh": self.ours, "z": self.after}, "sent": {}}


def test_the_switch_takes_only_our_hook_out_of_the_running_comm_and_puts_it_back() -> None:
    comm, switch = Comm(), HookSwitch("printmesh")
    full = comm._gcode_hooks["queuing"]
    assert switch.off(comm) and switch.is_off
    assert list(comm._gcode_hooks["queuing"]) == ["a", "z"] and list(full) == ["a", "printmesh", "z"]
    assert not switch.off(comm), "once"
    switch.on()
    assert comm._gcode_hooks["queuing"] is full and not switch.is_off
    assert switch.off(comm)
    replaced: dict[str, Any] = {"other": object()}
    comm._gcode_hooks["queuing"] = replaced  # someone else changed it meanwhile: left alone
    switch.on()
    assert comm._gcode_hooks["queuing"] is replaced
    assert not HookSwitch("printmesh").off(object()), "a comm of another shape is followed line by line"


class Follower:
    def __init__(self) -> None:
        self.lines: list[Any] = []
        self.marked = True

    def on_line(self, tags: Any, line: str, comm: Any = None) -> bool:
        self.lines.append((tags, line))
        return False


def test_the_marks_drive_layers_modes_and_fans_only_while_the_queuing_hook_is_out() -> None:
    hooks, follower, fans = CommHooks(), Follower(), []
    driver = HoldDriver(HoldConfig(session="t"), None)  # type: ignore[arg-type]
    hooks.attach(follower, driver, fans.append)  # type: ignore[arg-type]
    tags = {"source:file", "filepos:120"}
    hooks.on_atcommand(None, "queuing", "printmesh", "layer 3 F1800", tags=tags)
    assert follower.lines == [] and fans == [], "the queuing hook is in: it saw the mark as a file line"
    comm = Comm()
    assert hooks.on_gcode_queuing(comm, "queuing", "G1 X1", None, "G1", tags={"source:file", "filepos:9"}) is None
    assert hooks.switch.is_off, "a marked print: the hook took itself out at the file's first line"
    hooks.on_atcommand(comm, "queuing", "printmesh", "track G91", tags={"source:file", "filepos:100"})
    hooks.on_atcommand(comm, "queuing", "printmesh", "track M106 P1 S128", tags={"source:file", "filepos:110"})
    hooks.on_atcommand(comm, "queuing", "printmesh", "layer 3 F1800", tags=tags)
    hooks.on_atcommand(comm, "queuing", "pause", "", tags=tags)  # not ours
    assert follower.lines[1:] == [(tags, "")]
    assert fans == ["M106 P1 S128"]
    assert driver.modes == Modes(absolute=False, extrusion_relative=True, feedrate=1800.0)  # Marlin: G91 takes E along
    hooks.detach()
    assert not hooks.switch.is_off and "printmesh" in comm._gcode_hooks["queuing"]


class SendingComm(Comm):
    """A comm whose public ``sendCommand`` (what the terminal, the Control tab and plugins call) records."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, Any]] = []

    def sendCommand(self, cmd: Any, cmd_type: Any = None, part_of_job: bool = False, tags: Any = None) -> bool:
        self.sent.append((cmd, tags))
        return True


def test_lines_sent_from_outside_a_marked_print_are_tracked_and_sent_and_the_wrapper_goes_with_the_print() -> None:
    hooks, follower, fans = CommHooks(), Follower(), []
    driver = HoldDriver(HoldConfig(session="t"), None)  # type: ignore[arg-type]
    hooks.attach(follower, driver, fans.append)  # type: ignore[arg-type]
    comm = SendingComm()
    comm.sendCommand("G91", tags={"source:api"})  # before the print: the queuing hook tracks these, not the wrapper
    assert "sendCommand" not in vars(comm) and fans == []
    hooks.on_gcode_queuing(comm, "queuing", "G1 X1", None, "G1", tags={"source:file", "filepos:9"})
    assert hooks.switch.is_off and "sendCommand" in vars(comm)
    api = {"source:api", "api:printer.command"}
    assert comm.sendCommand("m106 p1 s64 ; the fan slider", tags=api) is True
    assert fans == ["m106 p1 s64"], "a fan is recorded at once, from the API's thread"
    comm.sendCommand("G91", tags=api)
    comm.sendCommand("G1 X10 F6000", tags=api)  # a jog: the printer's modal feed rate is now 6000
    comm.sendCommand("G90", tags={"source:plugin", "plugin:printmesh"})  # a hold's own line: left out
    comm.sendCommand("M105", cmd_type="temperature_poll")  # not tracked, still sent
    assert [c for c, _ in comm.sent][-5:] == ["m106 p1 s64 ; the fan slider", "G91", "G1 X10 F6000", "G90", "M105"]
    assert driver.modes == Modes(), "modes wait for the comm thread (their only writer)"
    hooks.on_atcommand(comm, "queuing", "printmesh", "layer 4", tags={"source:file", "filepos:200"})
    assert driver.modes == Modes(absolute=False, extrusion_relative=True, feedrate=6000.0)
    hooks.on_atcommand(comm, "queuing", "printmesh", "track G90", tags={"source:file", "filepos:210"})
    assert driver.modes.absolute, "the file's own lines still count, in order"

    def broken(line: str) -> None:
        raise RuntimeError("a full queue")

    hooks.record_fan = broken
    assert comm.sendCommand("M107", tags=api) is True and comm.sent[-1][0] == "M107", "tracking never costs a line"
    comm.sendCommand("G91", tags=api)
    hooks.on_print_end()
    assert not driver.modes.absolute, "what came after the last mark is tracked when the print ends"
    assert "sendCommand" not in vars(comm), "the class's own method again"
    comm.sendCommand("G90", tags=api)
    assert not driver.modes.absolute, "after the print the queuing hook tracks, not the wrapper"


def test_a_sendcommand_someone_else_wrapped_is_put_back_as_it_was() -> None:
    hooks = CommHooks()
    hooks.attach(Follower(), HoldDriver(HoldConfig(session="t"), None), lambda line: None)  # type: ignore[arg-type]
    comm, theirs = SendingComm(), []
    comm.sendCommand = lambda cmd, **kw: theirs.append(cmd)  # type: ignore[method-assign]
    other = comm.sendCommand
    hooks.on_gcode_queuing(comm, "queuing", "G1 X1", None, "G1", tags={"source:file", "filepos:9"})
    comm.sendCommand("M106 S10", tags={"source:api"})
    assert theirs == ["M106 S10"]
    hooks.on_print_end()
    assert comm.sendCommand is other
    assert not HookSwitch("printmesh", lambda c, t: None).off(object()), "no hooks dict: nothing switched or wrapped"
