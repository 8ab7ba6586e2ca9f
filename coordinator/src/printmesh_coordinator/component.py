"""Entry point registered under ``printmesh.components``, with the ``--preview`` option."""

from printmesh_coordinator.agent import CoordinatorAgent
from printmesh_coordinator.config import CoordinatorSettings
from printmesh_coordinator.preview import add_arguments, run_tool
from printmesh_core.agent import ComponentSpec

COMPONENT = ComponentSpec(
    name="coordinator",
    summary="layer-capture orchestration",
    settings=CoordinatorSettings,
    factory=CoordinatorAgent,
    add_arguments=add_arguments,
    run_tool=run_tool,
)
