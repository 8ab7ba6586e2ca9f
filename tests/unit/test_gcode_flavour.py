"""The one G-code motion model: what G90/G91 do to the extruder per firmware flavour, the hold's
restore under each flavour, the M115 report, and the setting that chooses the flavour."""

from __future__ import annotations

import copy

import pytest

from octoprint_printmesh.firmware_flavour import FirmwareFlavour
from octoprint_printmesh.gcode import (
    FLAVOURS,
    Modes,
    Motion,
    flavour_from_firmware,
    parse_m115,
    resolve_flavour,
    track,
)
from octoprint_printmesh.hold.safety import restore_lines
from octoprint_printmesh.settings import DEFAULTS, to_bridge_settings
from printmesh_core.config import ConfigError


def modes_after(lines: list[str], flavour: str, start: Modes | None = None) -> Modes:
    modes = start or Modes()
    for line in lines:
        modes = track(modes, line, flavour=flavour)  # type: ignore[arg-type]
    return modes


# ------------------------------------------------------------- G90 after M83
@pytest.mark.parametrize(("flavour", "relative_after_g90"), [("marlin", False), ("klipper", True), ("prusa", True)])
def test_g90_after_m83_per_flavour(flavour, relative_after_g90):
    modes = modes_after(["G90", "M83", "G91", "G1 X5", "G90"], flavour)  # a jog between M83 and the next move
    assert modes.absolute and modes.extrusion_relative is relative_after_g90
    motion = Motion(flavour)  # type: ignore[arg-type]
    for line in ["G90", "M83", "G92 E0", "G1 X10 Y10 Z0.2", "G91", "G1 X1", "G90"]:
        motion.feed(line)
    assert motion.relative_e is relative_after_g90 and motion.e_is_relative is relative_after_g90
    # the next extruding move means different things: 2 mm more (relative) or back to E2 (absolute)
    assert motion.feed("G1 X20 E2") == 1 and motion.e == 2
    assert motion.feed("G1 X30 E2") == (1 if relative_after_g90 else 0)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_g91_makes_e_relative_while_active_and_m82_wins_on_marlin(flavour):
    motion = Motion(flavour)
    for line in ["G90", "M82", "G92 E0", "G1 X0 Y0 Z1", "G91"]:
        motion.feed(line)
    assert motion.e_is_relative, "G91 makes E relative on every flavour"
    motion.feed("M82")
    assert motion.e_is_relative is (flavour != "marlin"), "Marlin: M82 after G91 makes E absolute again"
    assert modes_after(["G91", "M82"], flavour).extrusion_relative is False


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    "print_lines",
    [["G90", "M83", "G1 X1 F1800"], ["G90", "M82", "G1 X1 F900"], ["G91", "M83", "G1 X1 F600"], ["G91", "M82"]],
)
def test_hold_restore_ends_in_the_saved_modes(flavour, print_lines):
    """The release sends G1 F, G90/G91, M82/M83: whatever the hold did, the print's modes come back."""
    saved = modes_after(["G28", *print_lines], flavour)
    for disturbance in (["G91", "G1 Z2", "G90"], ["G90", "G1 X5 Y5 F6000"], ["G91", "M83"], ["M82", "G90"]):
        during = modes_after(disturbance, flavour, saved)
        restored = modes_after(list(restore_lines(saved, "t1")), flavour, during)
        assert (restored.absolute, restored.extrusion_relative) == (saved.absolute, saved.extrusion_relative)
        if saved.feedrate is not None:  # an unknown feed rate is not restored (the next file move sets one)
            assert restored == saved, (flavour, print_lines, disturbance)


def test_default_flavour_is_marlin_as_the_hold_always_assumed():
    assert track(Modes(extrusion_relative=True), "G90").extrusion_relative is False
    assert Motion().flavour == "marlin" and resolve_flavour("auto", None) == "marlin"


# ------------------------------------------------------------------- M115
def test_m115_reply_is_parsed_into_its_keys():
    line = (
        "FIRMWARE_NAME:Marlin 2.1.2.1 (Feb  3 2024 12:00:00) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin "
        "PROTOCOL_VERSION:1.0 MACHINE_TYPE:Ender-3 V2 EXTRUDER_COUNT:1 UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff"
    )
    keys = parse_m115(line)
    assert keys["FIRMWARE_NAME"] == "Marlin 2.1.2.1 (Feb  3 2024 12:00:00)"
    assert keys["MACHINE_TYPE"] == "Ender-3 V2" and keys["EXTRUDER_COUNT"] == "1"
    assert parse_m115("ok FIRMWARE_NAME:Klipper HOST_VERSION:v0.12.0")["FIRMWARE_NAME"] == "Klipper"
    assert parse_m115("echo:busy") == {}


@pytest.mark.parametrize(
    ("reply", "flavour"),
    [
        ("FIRMWARE_NAME:Klipper HOST_VERSION:v0.12.0-85 MACHINE_TYPE:Voron", "klipper"),
        ("FIRMWARE_NAME:Prusa-Firmware 3.13.3 based on Marlin FIRMWARE_URL:https://github.com/prusa3d", "prusa"),
        ("FIRMWARE_NAME:Prusa-Firmware-Buddy 6.0.3+8277 (Github) SOURCE_CODE_URL:", "prusa"),
        ("FIRMWARE_NAME:Marlin 2.0.8.2 (Jul  6 2021) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin", "marlin"),
        ("FIRMWARE_NAME:Virtual Marlin 1.0 PROTOCOL_VERSION:1.0", "marlin"),
        ("FIRMWARE_NAME:RepRapFirmware for Duet 3 MB6HC FIRMWARE_VERSION:3.4.5", None),
        ("", None),
    ],
)
def test_flavour_from_the_firmware_report(reply, flavour):
    data = parse_m115(reply)
    assert flavour_from_firmware(data.get("FIRMWARE_NAME"), data) == flavour
    assert resolve_flavour("auto", flavour) == (flavour or "marlin")
    assert resolve_flavour("klipper", flavour) == "klipper", "an explicit setting wins over the report"


class Reader:
    flavour = "marlin"


def test_firmware_info_hook_sets_every_reader_and_forgets_on_disconnect():
    hook, hooks, follower = FirmwareFlavour(), Reader(), Reader()
    hook.attach("auto", hooks, follower)
    hook.on_firmware_info(None, "Klipper", {"FIRMWARE_NAME": "Klipper", "HOST_VERSION": "v0.12"})
    assert hooks.flavour == follower.flavour == "klipper"
    hook.attach("prusa", hooks, follower)  # settings saved: the setting wins
    assert hooks.flavour == "prusa"
    hook.attach("auto", hooks, follower)
    assert hooks.flavour == "klipper"
    hook.forget()
    assert hooks.flavour == follower.flavour == "marlin"


# ---------------------------------------------------------------- setting
def test_flavour_setting_is_validated_and_named():
    assert to_bridge_settings(copy.deepcopy(DEFAULTS)).gcode.flavour == "auto"
    raw = copy.deepcopy(DEFAULTS)
    raw["gcode"]["flavour"] = "klipper"
    assert to_bridge_settings(raw).gcode.flavour == "klipper"
    raw["gcode"]["flavour"] = "reprap"
    with pytest.raises(ConfigError, match=r"gcode\.flavour"):
        to_bridge_settings(raw)
