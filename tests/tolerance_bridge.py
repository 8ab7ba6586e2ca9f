"""The OctoPrint bridge as a reader of ``test_contract_tolerance``: a real OctoPrint, and a hold to release.

The bridge reads two kinds of message from other processes: its holder's status (an offline
one releases the hold, whatever else the status carries) and its commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import Observer
from octoprint_harness import OctoPrint, start_octoprint
from printing import FAST, printable

from printmesh_core import contract
from printmesh_core.models.printer import HoldEnded, HoldRequest
from printmesh_core.topics import ComponentTopics, Topics
from printmesh_devkit.broker import LocalBroker


@dataclass(frozen=True)
class Bridge:
    server: OctoPrint
    observer: Observer
    topics: Topics
    printer: ComponentTopics  # the bridge's own <node>/printer

    def event_topic(self) -> str:
        return self.topics.absolute(contract.PRINTER_EVENT.topic(self.printer))


def run_bridge(
    broker: LocalBroker, tmp_path: Path, observer: Observer, topics: Topics, printer: ComponentTopics
) -> Iterator[Bridge]:
    """OctoPrint with the bridge as ``printer`` on ``broker``, once the bridge says online; still healthy at the end."""
    settings = {"node_id": printer.node_id, "mqtt": {"host": "127.0.0.1", "port": broker.port}}
    server = start_octoprint(tmp_path / "octoprint", settings)
    try:
        server.wait_operational()
        online = topics.absolute(contract.STATUS.topic(printer))
        observer.topic(online, where=lambda d: d["state"] == "online", timeout=30)
        yield Bridge(server, observer, topics, printer)
        assert server.api("GET", "/api/job")["state"] in ("Printing", "Operational", "Finishing")
    finally:
        server.stop()


def held_for(holder: ComponentTopics) -> Callable[[Bridge], None]:
    """Setup: a print held at layer 2 for ``holder``, so that its status going offline has a hold to release."""

    def setup(bridge: Bridge) -> None:
        obs, mark, t = bridge.observer, bridge.observer.mark(), bridge.topics
        request = HoldRequest(id="h1", layer=2, holder=f"{holder.node_id}/{holder.component}")
        obs.publish(t.absolute(contract.HOLD.cmd(bridge.printer)), request.model_dump_json(exclude_defaults=True))
        answer = obs.topic(t.absolute(contract.HOLD.res(bridge.printer)), after=mark, where=lambda d: d["id"] == "h1")
        assert answer["ok"], answer
        bridge.server.api("POST", "/api/printer/command", {"commands": FAST})
        bridge.server.upload("part.gcode", printable("prusa_zhop_purge"))
        obs.topic(bridge.event_topic(), after=mark, where=lambda d: d["event"] == contract.HELD, timeout=90)

    return setup


def released(events_topic: str, reason: str) -> Callable[[Any, int], bool]:
    """Handled: the bridge published a ``released`` event with this reason (``seen.observer`` recorded it)."""

    def check(seen: Any, mark: int) -> bool:
        events = [
            contract.PRINTER_EVENT.read(m.payload) for m in seen.observer.messages[mark:] if m.topic == events_topic
        ]
        return any(e.event == contract.RELEASED and contract.event_body(HoldEnded, e).reason == reason for e in events)

    return check
