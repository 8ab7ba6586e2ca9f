"""The host agent's loop: sample, publish, announce; shell commands on their own threads."""

from __future__ import annotations

import logging
import threading
import time

from printmesh_core import contract
from printmesh_core.agent import Agent
from printmesh_core.commands import Command
from printmesh_core.models.host import HostState, RefreshRequest
from printmesh_core.mqtt import Message
from printmesh_host.config import HostSettings, ShellCommand
from printmesh_host.entities import command_entities, host_entities
from printmesh_host.metrics import Sampler
from printmesh_host.shell import run_command

log = logging.getLogger("printmesh.host")


class HostAgent(Agent):
    component = "host"

    def __init__(self, settings: HostSettings) -> None:
        self.host = settings.host
        self.sampler = Sampler(settings.host)
        self._sample_lock = threading.Lock()
        self._shape: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        super().__init__(settings)
        self.command_topics = {c.name: contract.HOST_COMMAND.topic(self.me, c.name) for c in self.host.commands}

    def attach(self) -> None:
        """Clear retained results of shell commands that are no longer configured."""
        self.runtime.subscribe_relative(contract.HOST_COMMAND.filter(self.me), self._on_command_result)

    def _on_command_result(self, message: Message) -> None:
        relative = self.topics.relative(message.topic) or ""
        name = relative.rsplit("/", 1)[-1]
        if message.payload and name not in self.command_topics:
            log.info("clearing the retained result of removed command %r", name)
            self.runtime.publish_absolute(message.topic, b"", qos=1, retain=True)

    def commands(self) -> list[Command]:
        text = "Sample now and return the state."
        return [Command(contract.REFRESH.name, contract.REFRESH.request, self._refresh, description=text)]

    def _refresh(self, request: RefreshRequest) -> HostState:
        return self.sample_and_publish()

    def sample_and_publish(self) -> HostState:
        with self._sample_lock:
            state = self.sampler.sample()
            shape = (
                tuple(k for k, v in state if v is not None and k not in ("ts", "unavailable")),
                tuple(state.storage or ()),
            )
            if shape != self._shape:  # entities change only when the set of metrics does
                self._shape = shape
                entities = host_entities(state, self.topics.absolute(contract.HOST_STATE.topic(self.me)), self.host)
                entities += command_entities(
                    self.host, {n: self.topics.absolute(t) for n, t in self.command_topics.items()}
                )
                self.announce(entities)  # first, so HA drops a vanished metric's entity before its state goes null
            self.publish_state(contract.HOST_STATE.topic(self.me), state)
        return state

    def _command_loop(self, cmd: ShellCommand) -> None:
        topic = self.command_topics[cmd.name]
        while not self.stopping.is_set():
            result = run_command(cmd)
            if result.timed_out or result.error:
                log.warning("command %s: %s", cmd.name, result.error)
            self.publish_state(topic, result)
            self.stopping.wait(cmd.interval)

    def loop(self) -> None:
        for cmd in self.host.commands:
            threading.Thread(target=self._command_loop, args=(cmd,), name=f"cmd-{cmd.name}", daemon=True).start()
        while not self.stopping.is_set():
            started = time.monotonic()
            self.sample_and_publish()
            self.stopping.wait(max(0.0, self.host.interval - (time.monotonic() - started)))
