"""The one registry of printmesh's command names: components, tools, and who ships each.

``printmesh <name>`` and ``printmesh up`` read it; the distributions register the same names
as entry points (``printmesh.components``, ``printmesh.tools``), which
``tests/test_components.py`` checks against this table. Nothing here imports a component.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

COMPONENT_GROUP = "printmesh.components"
TOOL_GROUP = "printmesh.tools"


@dataclass(frozen=True)
class Registered:
    name: str
    summary: str
    distribution: str


# In start order: `printmesh up` starts the installed ones in this order.
COMPONENTS = {
    r.name: r
    for r in (
        Registered("host", "host metrics and configured shell commands", "printmesh-host"),
        Registered("sensors", "DHT temperature and humidity sensors", "printmesh-sensors"),
        Registered("camera", "cameras: previews and captures on request", "printmesh-camera"),
        Registered("coordinator", "layer-capture orchestration", "printmesh-coordinator"),
    )
}
TOOLS = {
    r.name: r
    for r in (
        Registered(
            "up",
            "the main job: mosquitto (when none is configured), every agent, OctoPrint and a print",
            "printmesh-devkit",
        ),
        Registered(
            "broker-config",
            "mosquitto's accounts, ACL and config for a mesh (a server tool, see docs/security.md)",
            "printmesh-devkit",
        ),
    )
}


def installed(group: str = COMPONENT_GROUP) -> dict[str, EntryPoint]:
    """The installed entry points of ``group`` by name, without importing them."""
    return {ep.name: ep for ep in entry_points(group=group)}


def installed_names() -> set[str]:
    """Names of the installed components, without importing them."""
    return set(installed(COMPONENT_GROUP))


def not_installed(entry: Registered) -> str:
    return f"printmesh: '{entry.name}' is not installed (pip install {entry.distribution})"
