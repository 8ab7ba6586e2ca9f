"""The plugin's firmware flavour: the ``gcode.flavour`` setting, the firmware's M115 report,
and the comm-thread readers that must use it (mode tracking, the live layer fallback).

OctoPrint calls :meth:`FirmwareFlavour.on_firmware_info` (the
``octoprint.comm.protocol.firmware.info`` hook, registered in the package's ``__init__``)
on its comm thread when the printer answers M115. The hook only classifies the name and
assigns one attribute per reader: no I/O, no lock, nothing to wait for.
"""

from __future__ import annotations

from typing import Any, Protocol

from octoprint_printmesh.gcode import Flavour, FlavourSetting, flavour_from_firmware, resolve_flavour


class UsesFlavour(Protocol):
    flavour: Flavour


class FirmwareFlavour:
    def __init__(self) -> None:
        self.setting: FlavourSetting = "auto"
        self.reported: Flavour | None = None
        self._readers: tuple[UsesFlavour, ...] = ()

    @property
    def flavour(self) -> Flavour:
        return resolve_flavour(self.setting, self.reported)

    def attach(self, setting: FlavourSetting, *readers: UsesFlavour) -> None:
        """New settings or a new bridge: these readers follow the flavour from now on."""
        self.setting = setting
        self._readers = readers
        self._push()

    def on_firmware_info(self, comm: Any, firmware_name: str, firmware_data: Any, *args: Any, **kwargs: Any) -> None:
        """OctoPrint's firmware.info hook (comm thread): remember what the firmware is."""
        data = firmware_data if isinstance(firmware_data, dict) else None
        self.reported = flavour_from_firmware(firmware_name, data)
        self._push()

    def forget(self) -> None:
        """Disconnected: the next printer reports its own firmware."""
        self.reported = None
        self._push()

    def _push(self) -> None:
        flavour = self.flavour
        for reader in self._readers:
            reader.flavour = flavour


FLAVOUR = FirmwareFlavour()  # one per OctoPrint process, like the plugin implementation
