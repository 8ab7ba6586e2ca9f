"""printmesh OctoPrint plugin: bridges this OctoPrint onto the printmesh MQTT contract.

OctoPrint reads ``__plugin_name__`` and ``__plugin_pythoncompat__`` from this file's
source, then asks the module for ``__plugin_implementation__`` and ``__plugin_hooks__``.
Those come from ``plugin`` on first access (PEP 562), so the plain modules of this package
(``layers``, ``logic``, ``hold``, ``printer_node``, ``settings``) import and test without OctoPrint.
"""

from __future__ import annotations

from typing import Any

__plugin_name__ = "printmesh"
__plugin_pythoncompat__ = ">=3.11,<4"


def __getattr__(name: str) -> Any:
    if name in ("__plugin_implementation__", "__plugin_hooks__"):
        from octoprint_printmesh import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
