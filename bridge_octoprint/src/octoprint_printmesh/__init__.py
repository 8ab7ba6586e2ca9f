"""printmesh OctoPrint plugin (skeleton).

This package only proves the packaging: OctoPrint discovers it through the
``octoprint.plugin`` entry point, loads it, and ``printmesh_core`` imports inside
OctoPrint's own virtualenv. On startup it logs one line with the installed versions.

It publishes no telemetry, subscribes to nothing and executes no commands: the
MQTT bridge itself (telemetry and commands) is the subject of issue 4.
"""

from __future__ import annotations

from typing import Any

import octoprint.plugin

import printmesh_core


class PrintmeshPlugin(octoprint.plugin.StartupPlugin, octoprint.plugin.SettingsPlugin):  # type: ignore[misc]
    """Startup and settings mixins only; OctoPrint injects ``_logger`` and ``_settings``."""

    def get_settings_defaults(self) -> dict[str, Any]:
        # No settings yet (issue 4 adds the broker connection); an empty dict still
        # registers the plugin's settings namespace ``plugins.printmesh``.
        return {}

    def on_after_startup(self) -> None:
        # self._logger is the logger named "octoprint.plugins.printmesh".
        self._logger.info(
            "printmesh plugin %s started (printmesh-core %s); telemetry/commands: not implemented yet",
            self._plugin_version,
            printmesh_core.__version__,
        )


__plugin_name__ = "printmesh"
__plugin_pythoncompat__ = ">=3.11,<4"
__plugin_implementation__ = PrintmeshPlugin()
