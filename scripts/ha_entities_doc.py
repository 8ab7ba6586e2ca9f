"""The entity list of docs/home-assistant.md, built from each component's real entity code.

Run ``.venv/bin/python scripts/ha_entities_doc.py`` to rewrite the list between the markers;
``--check`` exits 1 when the doc and the code disagree (tests/unit/test_ha_docs.py runs it).
The inputs are an example of each component: a host with every metric and one shell command,
one DHT sensor ``enclosure``, one camera ``bed`` with previews, a printer with one tool, a bed
and a chamber, and a coordinator capturing the printer ``octopi``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from octoprint_printmesh.entities import PrinterShape, printer_entities
from printmesh_camera.config import CameraConfig
from printmesh_camera.entities import camera_entities
from printmesh_coordinator.entities import printer_entities as capture_entities
from printmesh_core.discovery import Entity
from printmesh_core.models.host import HostState
from printmesh_core.topics import Topics, ha_id
from printmesh_host.config import HostConfig
from printmesh_host.entities import command_entities, host_entities
from printmesh_sensors.drivers.simulated import SimulatedSensor
from printmesh_sensors.entities import SensorTopics, sensor_entities

DOC = Path(__file__).resolve().parents[1] / "docs" / "home-assistant.md"
BEGIN, END = "<!-- entities:begin (scripts/ha_entities_doc.py) -->", "<!-- entities:end -->"


def components() -> dict[str, list[Entity]]:
    present: Any = object()  # host_entities only asks whether a metric is there
    state = HostState.model_construct(cpu=present, load=present, temperature=present, frequency=present,
                                      memory=present, swap=present, storage={"/": present}, uptime=present,
                                      throttling=present)  # fmt: skip
    host = HostConfig.model_validate({"commands": [{"name": "uptime", "argv": ["uptime"]}]})
    topics = Topics("printmesh", "octopi")
    camera = CameraConfig.model_validate({"name": "bed", "source": {"type": "synthetic"}})
    cam_topics = {k: f"t/{k}" for k in ("preview", "press", "availability", "last_capture")}
    sensor = SimulatedSensor(name="enclosure", driver="simulated")
    shape = PrinterShape(tools=("tool0",), bed=True, chamber=True, fans=("0",))
    return {
        "Host agent (`printmesh-host`)": host_entities(state, "t", host) + command_entities(host, {"uptime": "t"}),
        "Sensors agent (`printmesh-sensors`), per sensor": sensor_entities(
            sensor, "C", "enclosure", "octopi", SensorTopics("t/s", "t/h", "t/a")
        ),
        "Camera agent (`printmesh-camera`), per camera": camera_entities(camera, cam_topics),
        "OctoPrint bridge (`printmesh-octoprint`)": printer_entities(
            topics, topics.component("printer"), shape, allow_cancel=True
        ),
        "Coordinator (`printmesh-coordinator`), per printer": capture_entities("octopi", "t/s", "t/c", "t/w"),
    }


def render() -> str:
    lines = [BEGIN, ""]
    for title, entities in components().items():
        lines += [f"### {title}", "", "| Entity id | Name | Unit | Device class | Category |", "|---|---|---|---|---|"]
        for e in entities:
            o = e.options
            row = [f"`{e.platform}.<node>_{ha_id(e.object_id)}`", e.name or "(the device's name)"]
            row += [o.get(key, "") for key in ("unit_of_measurement", "device_class", "entity_category")]
            lines.append("| " + " | ".join(str(x) for x in row) + " |")
        lines.append("")
    return "\n".join([*lines, END])


def updated(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, found, tail = rest.partition(END)
    if not found:
        raise SystemExit(f"{DOC}: markers {BEGIN!r} ... {END!r} not found")
    return head + render() + tail


def main(argv: list[str]) -> int:
    text = DOC.read_text(encoding="utf-8")
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC} is out of date: run .venv/bin/python scripts/ha_entities_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
