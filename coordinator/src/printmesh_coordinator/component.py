"""Entry point registered under ``printmesh.components``, with ``--preview``, ``--render`` and ``--calibrate``."""

import argparse

from printmesh_coordinator import calibrate_tool, preview, render
from printmesh_coordinator.agent import CoordinatorAgent
from printmesh_coordinator.config import CoordinatorSettings
from printmesh_core.agent import ComponentSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    preview.add_arguments(parser)
    render.add_arguments(parser)
    calibrate_tool.add_arguments(parser)


def run_tool(settings: CoordinatorSettings, args: argparse.Namespace) -> int | None:
    for tool in (render.run_tool, calibrate_tool.run_tool):
        status = tool(args)
        if status is not None:
            return status
    return preview.run_tool(settings, args)


COMPONENT = ComponentSpec(
    name="coordinator",
    summary="layer-capture orchestration",
    settings=CoordinatorSettings,
    factory=CoordinatorAgent,
    add_arguments=add_arguments,
    run_tool=run_tool,
)
