"""Which flavour of G-code the connected firmware speaks, from its M115 report.

OctoPrint sends M115 on connect and hands the parsed ``FIRMWARE_NAME`` (and the other
``KEY:value`` pairs) to the ``octoprint.comm.protocol.firmware.info`` hook, on its comm
thread. :func:`flavour_from_firmware` is what that hook runs: string checks only, no I/O.
:func:`parse_m115` is the same from a raw reply line, for tests and for callers without
OctoPrint's parser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from octoprint_printmesh.gcode.motion import DEFAULT_FLAVOUR, FLAVOURS, Flavour

FlavourSetting = Literal["auto", "marlin", "klipper", "prusa"]
_KEY = re.compile(r"\b([A-Z][A-Z0-9_]*):")


def parse_m115(line: str) -> dict[str, str]:
    """``KEY:value`` pairs of an M115 reply; a value runs to the next ``KEY:`` (names have spaces).

    ``FIRMWARE_NAME:Marlin 2.1.2 (Oct 1 2023) SOURCE_CODE_URL:github.com/... PROTOCOL_VERSION:1.0``
    gives ``{"FIRMWARE_NAME": "Marlin 2.1.2 (Oct 1 2023)", "SOURCE_CODE_URL": ..., ...}``.
    """
    text = line.strip()
    if text.lower().startswith("ok"):
        text = text[2:].strip()
    keys = list(_KEY.finditer(text))
    out: dict[str, str] = {}
    for i, key in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(text)
        out[key.group(1)] = text[key.end() : end].strip()
    return out


def flavour_from_firmware(name: str | None, data: Mapping[str, str] | None = None) -> Flavour | None:
    """The flavour a reported firmware speaks; None when the report says nothing we know.

    Klipper reports ``FIRMWARE_NAME:Klipper``; Prusa's MK3 firmware ``Prusa-Firmware 3.x`` and
    the MK4/MINI ``Prusa-Firmware-Buddy`` (both taken as "prusa": their G90 keeps M83);
    Marlin and its vendor builds (Creality, Anycubic, OctoPrint's virtual printer) name
    Marlin. Anything else (RepRapFirmware, Smoothieware, an empty name) is None, and the
    default applies (:func:`resolve_flavour`).
    """
    text = (name or (data or {}).get("FIRMWARE_NAME") or "").lower()
    if "klipper" in text:
        return "klipper"
    if "prusa" in text:
        return "prusa"
    if "marlin" in text:
        return "marlin"
    return None


def resolve_flavour(setting: FlavourSetting, reported: Flavour | None) -> Flavour:
    """The flavour in force: the setting, or for ``auto`` the firmware's report, else Marlin.

    Why Marlin without a report: most printers OctoPrint drives run Marlin or a vendor build
    of it (Creality, Anycubic, Artillery, Voron-less hobby boards), and Klipper and Prusa's
    firmware both answer M115 with their names, so "no report" is almost always a Marlin too
    old or too trimmed to say. It is also the side that errs safely for a hold: after a jog's
    ``G91 ... G90`` Marlin really is in absolute E, and restoring M83 there would be wrong.
    """
    if setting != "auto":
        return setting
    return reported if reported in FLAVOURS else DEFAULT_FLAVOUR
