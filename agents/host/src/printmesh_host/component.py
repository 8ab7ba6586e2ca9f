"""Entry point registered under ``printmesh.components``."""

from printmesh_core.agent import ComponentSpec
from printmesh_host.agent import HostAgent
from printmesh_host.config import HostSettings

COMPONENT = ComponentSpec(
    name="host",
    summary="host metrics and configured shell commands",
    settings=HostSettings,
    factory=HostAgent,
)
