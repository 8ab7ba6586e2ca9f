"""G-code for the bridge: one parser (:mod:`.parse`) and one modal/motion model (:mod:`.motion`).

The hold (modes to restore), the layer scanner and the live fallback detector all read
lines through these, with the firmware's flavour (:mod:`.firmware`), so a line means the
same to every one of them.
"""

from octoprint_printmesh.gcode.firmware import FlavourSetting, flavour_from_firmware, parse_m115, resolve_flavour
from octoprint_printmesh.gcode.motion import (
    DEFAULT_FLAVOUR,
    EXTRUDES,
    FLAVOURS,
    Z_MOVED,
    Flavour,
    Modes,
    Motion,
    e_setting_after,
    track,
)
from octoprint_printmesh.gcode.parse import (
    AXES,
    TOKEN_PREFIX,
    Gcode,
    barrier,
    echo_line,
    fmt,
    parse,
    parse_position,
    token_in,
)

__all__ = [
    "AXES",
    "DEFAULT_FLAVOUR",
    "EXTRUDES",
    "FLAVOURS",
    "TOKEN_PREFIX",
    "Z_MOVED",
    "Flavour",
    "FlavourSetting",
    "Gcode",
    "Modes",
    "Motion",
    "barrier",
    "e_setting_after",
    "echo_line",
    "flavour_from_firmware",
    "fmt",
    "parse",
    "parse_m115",
    "parse_position",
    "resolve_flavour",
    "token_in",
    "track",
]
