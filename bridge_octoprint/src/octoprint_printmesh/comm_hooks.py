"""The plugin's comm-thread hooks, as plain code the benchmark and tests can drive.

OctoPrint calls these for every line sent, so each path is a few attribute
reads and set lookups; anything more (publishing, parsing a reply, a hold's gcode) is
queued for a worker. The one decision taken here is whether to hold before a layer's
first line, because that must happen before the line is sent.

OctoPrint registers the hooks once, at plugin load, while the node behind them is
rebuilt on every settings save: so one ``CommHooks`` lives as long as the plugin and the
plugin ``attach``-es the current node's parts to it.

**A marked print has no per-line hook at all.** A file uploaded with the plugin on carries
``@printmesh`` at-commands at its layer starts and after its mode and fan lines
(:mod:`.layers.upload_marks`). On such a print's first line the queuing hook takes itself out
of the running comm (:class:`HookSwitch`), and the marks, which OctoPrint hands to the
``atcommand.queuing`` hook only, drive the layers and the tracking (:meth:`CommHooks.on_atcommand`);
it is put back when the print ends. A file without marks is followed line by line as before.
Lines sent from outside the file while the hook is out (the terminal, the Control tab's fan
slider, OctoPrint's pause scripts, other plugins) all pass through ``comm.sendCommand``, which
file lines never do: for that time the switch wraps it (:meth:`HookSwitch.off`), so they are
tracked as the hook would have tracked them, at no cost to the file's lines.

There is no ``gcode.received`` hook: OctoPrint would call it for every ``ok``. The hold's
echo tokens come back as action commands (``//action:printmesh:<token>``, from
``M118 A1``) through ``octoprint.comm.protocol.action``, which OctoPrint calls only for
those lines (``ActionHook`` below), and the M114 position as OctoPrint's
``PositionUpdate`` event.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Set
from typing import Any

from octoprint_printmesh.hold.driver import HoldDriver
from octoprint_printmesh.layer_follower import LayerFollower

MODAL = frozenset({"G90", "G91", "M82", "M83", "G28", "M18", "M84", "M112"})  # lines that change tracked modes
FANS = frozenset({"M106", "M107"})
MOVES = frozenset({"G0", "G1"})
TRACKED = MODAL | FANS | MOVES  # one set test on the common path
OUTSIDE_KEPT = 1024  # modal lines from outside the file waiting for the next mark (the oldest go first)
log = logging.getLogger("octoprint.plugins.printmesh.layers")
_UNSET = object()


class HookSwitch:
    """Takes the plugin's ``gcode.queuing`` hook out of a running comm, and puts it back.

    OctoPrint reads ``comm._gcode_hooks["queuing"]`` (name -> hook) for every line; it has no
    public API for this, so the dict is replaced, never changed in place: a line being
    dispatched on the comm thread keeps the dict it started with. If the comm is not the shape
    expected, nothing is switched and the print is followed line by line.
    """

    def __init__(self, name: str, outside: Callable[[str, Set[str] | None], None] | None = None) -> None:
        self.name = name
        self.outside = outside  # told of each line sent from outside the file while the hook is out
        self._lock = threading.Lock()  # taken when switching only
        self._switched: tuple[Any, dict[str, Any], dict[str, Any]] | None = None  # comm, with, without
        self._wrapper: tuple[Callable[..., Any], Any] | None = None  # the comm's sendCommand while wrapped
        self.off_count = 0
        self._refused: Any = None  # a comm of another shape: not looked at again for every line

    @property
    def is_off(self) -> bool:
        return self._switched is not None

    def off(self, comm: Any) -> bool:
        """Comm thread: our queuing hook out of ``comm``; True when it was taken out."""
        if comm is self._refused:
            return False
        with self._lock:
            if self._switched is not None:
                return False
            hooks = getattr(comm, "_gcode_hooks", None)
            full = hooks.get("queuing") if isinstance(hooks, dict) else None
            if not isinstance(full, dict) or self.name not in full:
                self._refused = comm
                return False
            without = {name: hook for name, hook in full.items() if name != self.name}
            hooks["queuing"] = without  # type: ignore[index]
            self._switched = (comm, full, without)
            self._wrapper = self._wrap(comm)
            self.off_count += 1
        return True  # logged when it is put back (no I/O on the comm thread)

    def _wrap(self, comm: Any) -> tuple[Callable[..., Any], Any] | None:
        """``comm.sendCommand`` shadowed on the instance: the line is told to ``outside``, then sent.

        Returns the wrapper and what the instance held before (``_UNSET``: nothing, the class's
        method), to put back. OctoPrint's callers (``printer.commands``, scripts, polling) pass
        ``tags`` by keyword; nothing here can stop a line being sent.
        """
        outside, original = self.outside, getattr(comm, "sendCommand", None)
        if outside is None or not callable(original):
            return None

        def send_command(cmd: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(cmd, str):
                try:
                    outside(cmd, kwargs.get("tags"))
                except Exception:  # tracking must never cost OctoPrint a line
                    log.debug("a line sent from outside the file was not tracked: %r", cmd, exc_info=True)
            return original(cmd, *args, **kwargs)

        try:
            before = vars(comm).get("sendCommand", _UNSET)
            comm.sendCommand = send_command
        except (TypeError, AttributeError):  # no instance dict: not wrapped, those lines go untracked
            return None
        return send_command, before

    def on(self) -> bool:
        """Any thread: put the hook back (the print ended, the plugin stops); True if it was out."""
        with self._lock:
            switched, self._switched = self._switched, None
            if switched is None:
                return False
            comm, full, without = switched
            hooks = getattr(comm, "_gcode_hooks", None)
            if isinstance(hooks, dict) and hooks.get("queuing") is without:
                hooks["queuing"] = full
            wrapped, self._wrapper = self._wrapper, None
            if wrapped is not None and vars(comm).get("sendCommand") is wrapped[0]:
                if wrapped[1] is _UNSET:
                    del comm.sendCommand  # the class's method again
                else:
                    comm.sendCommand = wrapped[1]
        return True


class CommHooks:
    def __init__(self, name: str = "printmesh") -> None:
        self.follower: LayerFollower | None = None
        self.holds: HoldDriver | None = None
        self.record_fan: Callable[[str], None] = lambda line: None
        self.switch = HookSwitch(name, self.on_outside_line)
        self._own = f"plugin:{name}"  # the tag of the plugin's own lines (a hold's)
        # modal lines from outside the file, for the comm thread (the modes' only writer) to track
        self._outside: deque[tuple[str, str]] = deque(maxlen=OUTSIDE_KEPT)

    def attach(self, follower: LayerFollower, holds: HoldDriver, record_fan: Callable[[str], None]) -> None:
        self.record_fan = record_fan
        self.holds = holds
        self.follower = follower

    def detach(self) -> None:
        self.on_print_end()
        self.follower = None
        self.holds = None

    def on_print_end(self) -> None:
        """The print ended (event thread): the queuing hook back for whatever comes next."""
        self._track_outside()  # the marks are over: nothing else tracks now
        if self.switch.on():
            log.info("the print was followed from its layer marks, with no per-line hook")

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
        if tags and "source:file" in tags:
            if follower.on_line(tags, cmd, comm):
                return (None,)  # held before this line: it is kept back and sent at the release
            if follower.marked:
                self.switch.off(comm)  # the marks take over from the next line
        if gcode in TRACKED:
            self.track(gcode, cmd)
        return None

    def on_atcommand(
        self,
        comm: Any,
        phase: str,
        command: str,
        parameters: str,
        tags: Set[str] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """``atcommand.queuing``, comm thread: a marked print's layer starts and tracked lines.

        Only while the queuing hook is out (:class:`HookSwitch`); otherwise that hook has
        seen the mark as a file line, and the tracked line itself.
        """
        if command != "printmesh" or not self.switch.is_off:
            return
        follower = self.follower
        if follower is None:
            return
        if self._outside:
            self._track_outside()  # sent before this mark's line: OctoPrint sends its queue first
        kind, _, rest = parameters.partition(" ")
        if kind == "layer":
            feed = rest.find("F")
            if feed >= 0:
                self.track("G1", "G1 " + rest[feed:])
            follower.on_line(tags, "", comm)  # a hold here keeps nothing back: the mark is never sent
        elif kind == "track":
            self.track(rest.split(" ", 1)[0], rest)

    def on_outside_line(self, cmd: str, tags: Set[str] | None) -> None:
        """Any thread, while the queuing hook is out: a line sent from outside the file.

        Fans go to the node's queue at once (a fan slider moved mid-print shows at once); a
        mode or feed rate waits for the comm thread, which tracks it before the next mark, so
        a hold at that mark restores it. The plugin's own lines (a hold's) restore what they
        change, and are left out, as before.
        """
        if tags and self._own in tags:
            return
        line = cmd.split(";", 1)[0].strip()
        upper = line.upper()
        gcode = upper.split(None, 1)[0] if upper else ""
        if gcode in FANS:
            self.record_fan(line)
        elif gcode in MODAL or (gcode in MOVES and "F" in upper):
            self._outside.append((gcode, upper))

    def _track_outside(self) -> None:
        while self._outside:
            try:
                gcode, line = self._outside.popleft()
            except IndexError:
                return
            self.track(gcode, line)

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
