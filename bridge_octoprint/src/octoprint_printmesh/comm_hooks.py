"""The plugin's comm-thread hooks, as plain code the benchmark and tests can drive.

OctoPrint calls these for every line sent, so each path is a few attribute
reads and set lookups; anything more (publishing, parsing a reply, a hold's gcode) is
queued for a worker. The one decision taken here is whether to hold before a layer's
first line, because that must happen before the line is sent.

OctoPrint registers the hooks once, at plugin load, while the node behind them is
rebuilt on every settings save: so one ``CommHooks`` lives as long as the plugin and the
plugin ``attach``-es the current node's parts to it.

There is no ``gcode.received`` hook: OctoPrint would call it for every ``ok``. The hold's
echo tokens come back as action commands (``//action:printmesh:<token>``, from
``M118 A1``) through ``octoprint.comm.protocol.action``, which OctoPrint calls only for
those lines (``ActionHook`` below), and the M114 position as OctoPrint's
``PositionUpdate`` event.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from typing import Any

from octoprint_printmesh.hold.driver import HoldDriver
from octoprint_printmesh.layer_follower import LayerFollower

MODAL = frozenset({"G90", "G91", "M82", "M83", "G28", "M18", "M84", "M112"})  # lines that change tracked modes
FANS = frozenset({"M106", "M107"})
MOVES = frozenset({"G0", "G1"})
TRACKED = MODAL | FANS | MOVES  # one set test on the common path


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
        self,
        comm: Any,
        phase: str,
        cmd: str,
        cmd_type: Any,
        gcode: str | None,
        subcode: str | None = None,
        tags: Set[str] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[None] | None:
        """Comm thread: follow the layers; hold at a planned boundary (no I/O, no waiting).

        OctoPrint passes ``subcode`` and ``tags`` by keyword: named here, they cost no dict.
        The common line (a file line inside a layer, a G1 without F) does two membership
        tests, the tracker's one comparison and returns: no allocation but the position's
        int, no logging. A suppressed line is not tracked; it is tracked when it is sent at
        the release. Fans and modes are tracked here rather than in a ``gcode.sent`` hook:
        every line (file, API, ours) passes this phase in order, and one hook is cheaper
        than two.
        """
        follower = self.follower
        if follower is None:
            return None
        if tags and "source:file" in tags and follower.on_line(tags, cmd, comm):
            return (None,)  # held before this line: it is kept back and sent at the release
        if gcode in TRACKED:
            self.track(gcode, cmd)
        return None

    # ----------------------------------------------------------------- bodies
    def queuing(self, cmd: str, gcode: str | None, tags: Set[str] | None, comm: Any = None) -> bool:
        """True: the job was put on hold before this line (the hook suppresses it)."""
        return self.on_gcode_queuing(comm, "queuing", cmd, None, gcode, tags=tags) is not None

    def track(self, gcode: str | None, cmd: str) -> None:
        """Fans as commanded, and the modes (G90/M83/F/homed) a hold must restore.

        A move matters only for its feed rate, which the driver keeps unparsed until a hold
        reads it (a file may set F on every move)."""
        holds = self.holds
        if gcode in MOVES:
            if "F" in cmd and holds is not None:
                holds.tracked.feed_rate_line(cmd, holds.flavour)
        elif gcode in FANS:
            self.record_fan(cmd)
        elif holds is not None:
            holds.line_tracked(cmd)


class ActionHook:
    """OctoPrint's ``octoprint.comm.protocol.action`` hook: registered once, pointed at the current driver.

    OctoPrint calls it only for the printer's ``//action:`` lines, never for an ``ok``: the
    hold's echo tokens (``M118 A1 action:printmesh:<token>``) go from the comm thread to
    ``HoldDriver.echoed``. The M114 position comes as the ``PositionUpdate`` event.
    """

    def __init__(self) -> None:
        self.driver: HoldDriver | None = None

    def on_action(self, comm: Any, line: str, action: str, *args: Any, **kwargs: Any) -> None:
        driver = self.driver
        if driver is not None:
            driver.echoed(action)
