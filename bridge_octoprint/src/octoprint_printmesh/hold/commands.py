"""``hold``, ``release``, ``move`` and ``gcode``: requests turned into hold-machine inputs.

These commands are deferred: the network thread only registers the answer and queues the
request for the hold's thread, which checks the permissions, reads the printer profile
and the homed axes, and feeds the machine. The answer comes when the machine says so (a
move, when the printer has echoed its token), never when the lines were merely queued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from octoprint_printmesh.gcode import parse
from octoprint_printmesh.hold.driver import Answer, HoldDriver
from octoprint_printmesh.hold.types import (
    GcodeRequested,
    HoldCommand,
    HoldInput,
    MoveRequested,
    ReleaseRequested,
)
from octoprint_printmesh.settings import Permissions
from printmesh_core import contract
from printmesh_core.commands import Command
from printmesh_core.contract import CommandRoute
from printmesh_core.models.envelope import CommandRequest
from printmesh_core.models.printer import GcodeRequest, HoldRequest, MoveRequest, PrinterProfile, ReleaseRequest


@dataclass(frozen=True)
class Refused:
    code: str
    message: str


def gcode_refusal(lines: list[str], permissions: Permissions) -> Refused | None:
    """Off unless allowed, and then only the listed commands, whatever else a line holds."""
    if not permissions.allow_gcode:
        return Refused("disabled", "the gcode command is off in the plugin settings (commands.allow_gcode)")
    allowed = set(permissions.gcode_allow)
    for line in lines:
        cmd = parse(line)
        if cmd is None or cmd.code not in allowed:
            code = cmd.code if cmd is not None else line.strip()[:16]
            return Refused("not_allowed", f"{code!r} is not in commands.gcode_allow ({', '.join(sorted(allowed))})")
    return None


class HoldCommands:
    def __init__(
        self,
        driver: HoldDriver,
        permissions: Permissions,
        profile: Callable[[], PrinterProfile | None],
        watch_holder: Callable[[str], str | None],
    ) -> None:
        self.driver = driver
        self.permissions = permissions
        self.profile = profile  # read on the hold's thread
        self.watch_holder = watch_holder  # subscribe to '<node>/<component>' status; an error text if invalid

    def commands(self) -> list[Command]:
        def deferred(route: CommandRoute[Any], text: str) -> Command:
            return Command(route.name, route.request, self._accept, description=text, deferred=True)

        return [
            deferred(contract.HOLD, "Hold now, at a layer, or arm a plan of layers (answered once held/armed)."),
            deferred(contract.RELEASE, "Return the head and let the held print continue."),
            deferred(contract.MOVE, "Move the held head inside the volume; answered when the move is done."),
            deferred(contract.GCODE, "Send allow-listed commands; off unless commands.allow_gcode."),
        ]

    def _accept(self, request: CommandRequest, message: Any, answer: Answer) -> None:
        """Network thread: remember how to answer, and queue the rest."""
        key = self.driver.register(request.id, answer)
        self.driver.submit(lambda: self._run(request, key))

    def _run(self, request: CommandRequest, key: str) -> None:
        result = self.translate(request, key)
        if isinstance(result, Refused):
            self.driver.refuse(key, result.code, result.message)
        else:
            self.driver.feed(result)

    def translate(self, request: CommandRequest, key: str) -> HoldInput | Refused:
        p = self.permissions
        if isinstance(request, HoldRequest):
            if not p.allow_hold:
                return Refused("disabled", "holds are off in the plugin settings (commands.allow_hold)")
            trusted = p.holders
            if trusted and request.holder not in trusted:
                named = "names no holder" if request.holder is None else f"names holder {request.holder!r}"
                message = f"the hold {named}; this printer obeys only {', '.join(trusted)} (commands.trusted_holders)"
                return Refused("untrusted_holder", message)
            if request.holder is not None:
                problem = self.watch_holder(request.holder)
                if problem is not None:
                    return Refused("invalid_request", f"holder: {problem}")
            return HoldCommand.from_request(request.model_copy(update={"id": key}))
        if isinstance(request, ReleaseRequest):
            return ReleaseRequested(key, request.disarm, hold_id=request.hold_id)
        if isinstance(request, MoveRequest):
            if not p.allow_move:
                return Refused("disabled", "moves are off in the plugin settings (commands.allow_move)")
            profile = self.profile()
            if profile is None:
                return Refused("no_profile", "no printer profile is known, so no move can be checked")
            homed = self.driver.modes.homed
            return MoveRequested(
                key, request.x, request.y, request.z, request.feedrate, homed, profile, hold_id=request.hold_id
            )
        if isinstance(request, GcodeRequest):
            refused = gcode_refusal(request.lines, p)
            return refused or GcodeRequested(key, tuple(request.lines))
        return Refused("invalid_request", f"not a hold command: {type(request).__name__}")
