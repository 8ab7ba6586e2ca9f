"""printmesh OctoPrint plugin: bridges this OctoPrint onto the printmesh MQTT contract.

OctoPrint reads ``__plugin_name__`` and ``__plugin_pythoncompat__`` from this file's
source, then asks the module for ``__plugin_implementation__`` and ``__plugin_hooks__``.
Those come from ``plugin`` on first access (PEP 562), so the plain modules of this package
(``layers``, ``logic``, ``hold``, ``gcode``, ``printer_node``, ``settings``) import and test without OctoPrint.
The firmware-info hook (the flavour of G-code the printer speaks) is added here.
"""

from __future__ import annotations

from typing import Any

__plugin_name__ = "printmesh"
__plugin_pythoncompat__ = ">=3.11,<4"
FIRMWARE_INFO_HOOK = "octoprint.comm.protocol.firmware.info"


def __getattr__(name: str) -> Any:
    if name == "__plugin_implementation__":
        from octoprint_printmesh import plugin

        return plugin.__plugin_implementation__
    if name == "__plugin_hooks__":
        from octoprint_printmesh import plugin
        from octoprint_printmesh.firmware_flavour import FLAVOUR

        return {**plugin.__plugin_hooks__, FIRMWARE_INFO_HOOK: FLAVOUR.on_firmware_info}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
