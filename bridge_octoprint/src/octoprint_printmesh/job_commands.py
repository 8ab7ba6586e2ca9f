"""``pause``, ``resume`` and ``cancel`` over MQTT, checked against the printer's state first.

The handlers run on the command pool (never on OctoPrint's threads) and only call
OctoPrint's non-blocking job methods; a request that does not fit the state gets an
error naming why, instead of a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from printmesh_core import contract
from printmesh_core.commands import Command, CommandFailed
from printmesh_core.contract import CommandRoute
from printmesh_core.models.printer import CancelRequest, PauseRequest, ResumeRequest


@dataclass(frozen=True)
class JobControl:
    printing: Callable[[], bool]
    paused: Callable[[], bool]
    pause: Callable[[], None]
    resume: Callable[[], None]
    cancel: Callable[[], None]
    # why pause/resume must not run now (a printmesh hold is in progress), or None
    refusal: Callable[[str], str | None] = lambda command: None
    before_cancel: Callable[[], None] = lambda: None  # lets a hold go first, so the cancel is not stuck


def _check_hold(ctl: JobControl, command: str) -> None:
    why = ctl.refusal(command)
    if why is not None:
        raise CommandFailed("held", why)


def job_commands(ctl: JobControl, allow_cancel: bool) -> list[Command]:
    def pause(request: PauseRequest) -> dict[str, Any]:
        if not ctl.printing():
            raise CommandFailed("not_printing", "no print is running")
        _check_hold(ctl, contract.PAUSE.name)
        ctl.pause()
        return {"requested": contract.PAUSE.name}

    def resume(request: ResumeRequest) -> dict[str, Any]:
        if not ctl.paused():
            raise CommandFailed("not_paused", "the print is not paused")
        _check_hold(ctl, contract.RESUME.name)
        ctl.resume()
        return {"requested": contract.RESUME.name}

    def cancel(request: CancelRequest) -> dict[str, Any]:
        if not allow_cancel:
            raise CommandFailed("disabled", "cancel is off in the plugin settings (allow_cancel)")
        if not (ctl.printing() or ctl.paused()):
            raise CommandFailed("not_printing", "no print is running")
        ctl.before_cancel()
        ctl.cancel()
        return {"requested": contract.CANCEL.name}

    def served(route: CommandRoute[Any], handler: Callable[..., dict[str, Any]], text: str) -> Command:
        return Command(route.name, route.request, handler, description=text)

    return [
        served(contract.PAUSE, pause, "OctoPrint's pause (runs the pause scripts)."),
        served(contract.RESUME, resume, "OctoPrint's resume."),
        served(contract.CANCEL, cancel, "Cancel the print; off unless allow_cancel."),
    ]
