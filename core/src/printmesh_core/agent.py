"""The process shell every agent shares: the node shell (``node.NodeShell``) plus signals and a loop."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from printmesh_core.commands import Command
from printmesh_core.config import AgentSettings
from printmesh_core.node import NodeShell

log = logging.getLogger("printmesh.agent")


class Agent(NodeShell):
    """Subclasses set ``component``, return their commands, and implement ``loop``."""

    component = "agent"

    def __init__(self, settings: AgentSettings) -> None:
        super().__init__(settings, self.component)
        self.settings = settings
        self.stopping = threading.Event()
        self.server = self.serve(self.commands())

    # ----------------------------------------------------------- for subclasses
    def commands(self) -> list[Command]:
        return []

    def attach(self) -> None:
        """Add subscriptions before connecting (they are restored on every connect)."""

    def loop(self) -> None:
        """Run until ``self.stopping`` is set; wait on it rather than sleeping."""
        self.stopping.wait()

    # ------------------------------------------------------------------ running
    def _republish_state(self) -> None:
        self.republish()

    def _republish_after_connect(self) -> None:
        """Resend retained state, except what the offline queue has just sent."""
        self.republish(skip_flushed=True)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        # A broker restarted without persistence has lost our retained state: resend it.
        self.wire(self.server, on_birth=self._republish_state, on_connected=self._republish_after_connect)
        self.attach()
        mq = self.settings.mqtt
        log.info(
            "%s agent for node %s, broker %s (MQTT %s)", self.component, self.settings.node_id, mq.where, mq.protocol
        )
        self.runtime.start()
        try:
            self.loop()
        finally:
            self.server.close()
            self.close_node()
            self.runtime.stop()
            log.info("stopped")
        return 0


@dataclass(frozen=True)
class ComponentSpec:
    """What a distribution registers under the ``printmesh.components`` entry point group.

    ``add_arguments`` adds the component's own command-line options (the coordinator's
    ``--preview``); ``run_tool`` then gets the validated settings and the parsed options, and
    returns an exit status when an option asked for something other than running the agent,
    or None to run it.
    """

    name: str
    summary: str
    settings: type[AgentSettings]
    factory: Callable[[Any], Agent]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    run_tool: Callable[[Any, argparse.Namespace], int | None] | None = None
