"""The bodies of the plugin's comm-thread hooks, as plain code the benchmark and tests can drive.

OctoPrint calls these for every line sent and received, so each path is a few attribute
reads and set lookups; anything more (publishing, parsing a reply, a hold's gcode) is
queued for the bridge's worker. The one decision taken here is whether to hold before a
layer's first line, because that must happen before the line is sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from octoprint_printmesh.bridge import Bridge
from octoprint_printmesh.follow import LayerFollower
from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour, track

MODAL = frozenset({"G90", "G91", "M82", "M83", "G28", "M18", "M84", "M112"})  # lines that change tracked modes
FANS = frozenset({"M106", "M107"})
MOVES = frozenset({"G0", "G1"})


class CommHooks:
    def __init__(self, bridge: Bridge, follower: LayerFollower) -> None:
        self.bridge = bridge
        self.follower = follower
        self.flavour: Flavour = DEFAULT_FLAVOUR  # the firmware's, set by the plugin

    def queuing(self, cmd: str, gcode: str | None, tags: Iterable[str] | None) -> bool:
        """True: the job was put on hold before this line, which the hook must suppress.

        Also tracks fans and modes here rather than in a ``gcode.sent`` hook: every line
        (file, API, ours) passes this phase in order, and one hook per line is cheaper than
        two. A suppressed line is not tracked; it is tracked when it is sent at the release.
        """
        event = self.follower.on_line(tags, cmd)
        if event is not None and self.bridge.holds.at_layer(event, cmd):
            return True
        self.track(gcode, cmd)
        return False

    def track(self, gcode: str | None, cmd: str) -> None:
        """Fans as commanded, and the modes (G90/M83/F/homed) a hold must restore."""
        if gcode in FANS:
            self.bridge.record_fan(cmd)
        elif gcode in MODAL or (gcode in MOVES and "F" in cmd):
            holds = self.bridge.holds
            holds.modes = track(holds.modes, cmd, flavour=self.flavour)

    def received(self, line: str) -> None:
        """While a hold runs, pass its echo tokens and the position reply to the worker."""
        holds = self.bridge.holds
        if holds.active:
            found = holds.on_received(line)
            if found is not None:
                self.bridge.feed_hold(found)
