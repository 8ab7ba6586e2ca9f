"""The plugin's comm-thread hooks, as plain code the benchmark and tests can drive.

OctoPrint calls these for every line sent, so each path is a few attribute
reads and set lookups; anything more (publishing, parsing a reply, a hold's gcode) is
queued for a worker. The one decision taken here is whether to hold before a layer's
first line, because that must happen before the line is sent.

OctoPrint registers the hooks once, at plugin load, while the node behind them is
rebuilt on every settings save: so one ``CommHooks`` lives as long as the plugin and the
plugin ``attach``-es the current node's parts to it. The printer's replies go straight
to the hold (``hold.driver.ReplyHook``): nothing else reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from octoprint_printmesh.hold.driver import HoldDriver
from octoprint_printmesh.layer_follower import LayerFollower

MODAL = frozenset({"G90", "G91", "M82", "M83", "G28", "M18", "M84", "M112"})  # lines that change tracked modes
FANS = frozenset({"M106", "M107"})
MOVES = frozenset({"G0", "G1"})


class CommHooks:
    def __init__(self) -> None:
        self.follower: LayerFollower | None = None
        self.holds: HoldDriver | None = None
        self.record_fan: Callable[[str], None] = lambda line: None

    def attach(self, follower: LayerFollower, holds: HoldDriver, record_fan: Callable[[str], None]) -> None:
        self.record_fan = record_fan
        self.holds = holds
        self.follower = follower

    def detach(self) -> None:
        self.follower = None
        self.holds = None

    # -------------------------------------------------------- OctoPrint's hook
    def on_gcode_queuing(
        self, comm: Any, phase: str, cmd: str, cmd_type: Any, gcode: Any, *args: Any, **kwargs: Any
    ) -> tuple[None] | None:
        """Comm thread: follow the layers; hold at a planned boundary (no I/O, no waiting)."""
        if self.queuing(cmd, gcode, kwargs.get("tags", args[1] if len(args) > 1 else None), comm):
            return (None,)  # held before this line: it is kept back and sent at the release
        return None

    # ----------------------------------------------------------------- bodies
    def queuing(self, cmd: str, gcode: str | None, tags: Iterable[str] | None, comm: Any = None) -> bool:
        """True: the job was put on hold before this line, which the hook must suppress.

        Also tracks fans and modes here rather than in a ``gcode.sent`` hook: every line
        (file, API, ours) passes this phase in order, and one hook per line is cheaper than
        two. A suppressed line is not tracked; it is tracked when it is sent at the release.
        """
        follower = self.follower
        if follower is None:
            return False
        if follower.on_line(tags, cmd, comm):  # comm: which file, read on a print's first line only
            return True
        self.track(gcode, cmd)
        return False

    def track(self, gcode: str | None, cmd: str) -> None:
        """Fans as commanded, and the modes (G90/M83/F/homed) a hold must restore."""
        if gcode in FANS:
            self.record_fan(cmd)
        elif gcode in MODAL or (gcode in MOVES and "F" in cmd):
            holds = self.holds
            if holds is not None:
                holds.line_tracked(cmd)
