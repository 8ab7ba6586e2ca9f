"""The plugin class: OctoPrint's mixins and hooks, wired to plain modules.

The class below only wires OctoPrint's mixins and hooks to plain modules (``printer_node``,
``comm_hooks``, ``hold``, ``settings``); it never does network I/O or waits on OctoPrint's
comm or event threads.

The hooks only record and queue, with one exception that costs no waiting: at a layer
boundary the hold plan is decided on the comm thread, so the job goes on hold before the
layer's first line leaves (``hold.driver.HoldDriver.at_layer``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import octoprint.plugin

from octoprint_printmesh.comm_hooks import ActionHook, CommHooks
from octoprint_printmesh.dashboard.service import Dashboard
from octoprint_printmesh.dashboard.ui import URLS, DashboardUi, additional_permissions
from octoprint_printmesh.firmware_flavour import FLAVOUR
from octoprint_printmesh.job_commands import JobControl, job_commands
from octoprint_printmesh.layer_follower import LayerFollower
from octoprint_printmesh.marked_upload import MarkedUpload
from octoprint_printmesh.printer_node import PrinterIO, PrinterNode
from octoprint_printmesh.settings import DEFAULTS, RESTRICTED, SETTINGS_VERSION, migrate, to_bridge_settings
from octoprint_printmesh.telemetry_publisher import Snapshot
from printmesh_core import __version__ as core_version
from printmesh_core import contract
from printmesh_core.config import ConfigError

TAGS = frozenset({"source:plugin", "plugin:printmesh"})
FORGETS = frozenset({"FileRemoved", "FileMoved", "FolderRemoved", "FolderMoved"})
FILE_EVENTS = FORGETS | {"FileAdded", "FileSelected", "PrintStarted"}  # OctoPrint's event names
GCODE_SUFFIXES = (".gcode", ".gco", ".g")
# why the hold machine sees the print stop: OctoPrint's print endings (the contract's), or the printer gone
STOPS = {
    **dict(zip(contract.PRINT_ENDINGS, ("done", "failed", "cancelled"), strict=True)),
    "Disconnected": "disconnected",
}


class PrintmeshPlugin(
    DashboardUi,
    octoprint.plugin.StartupPlugin,  # type: ignore[misc]
    octoprint.plugin.ShutdownPlugin,  # type: ignore[misc]
    octoprint.plugin.SettingsPlugin,  # type: ignore[misc]
    octoprint.plugin.EventHandlerPlugin,  # type: ignore[misc]
    octoprint.plugin.TemplatePlugin,  # type: ignore[misc]
    octoprint.plugin.AssetPlugin,  # type: ignore[misc]
    octoprint.plugin.SimpleApiPlugin,  # type: ignore[misc]
    octoprint.plugin.BlueprintPlugin,  # type: ignore[misc]
):
    """OctoPrint injects ``_logger``, ``_settings``, ``_plugin_manager`` and friends."""

    _node: PrinterNode | None = None
    _follower: LayerFollower | None = None
    _broker_message: dict[str, Any] | None = None  # the last of each, for pages opened later
    _hold_message: dict[str, Any] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.comm_hooks = CommHooks()  # registered once with OctoPrint; see __plugin_hooks__
        self.replies = ActionHook()  # the hold's echo tokens, as action commands

    # ------------------------------------------------------------ lifecycle
    def initialize(self) -> None:
        # Events fired during startup (Connected, PrinterStateChanged) reach on_event
        # before on_after_startup, so the node must exist from here.
        self._start_node()

    def on_after_startup(self) -> None:
        self._logger.info("printmesh plugin %s started (printmesh-core %s)", self._plugin_version, core_version)

    def on_shutdown(self) -> None:
        self._stop_node()

    def _start_node(self) -> None:
        try:
            settings = to_bridge_settings(self._settings.get([], merged=True) or {})
        except ConfigError as exc:
            self._logger.error("printmesh is not connecting: invalid settings: %s", exc)
            self._notify({"broker": "misconfigured", "error": str(exc)})
            return
        control = JobControl(
            printing=lambda: bool(self._printer.is_printing()),
            paused=lambda: bool(self._printer.is_paused()),
            pause=lambda: self._printer.pause_print(tags=set(TAGS)),
            resume=lambda: self._printer.resume_print(tags=set(TAGS)),
            cancel=lambda: self._printer.cancel_print(tags=set(TAGS)),
            refusal=lambda command: self._node.holds.refusal(command) if self._node else None,
            before_cancel=lambda: self._node.holds.cancel_requested() if self._node else None,
        )
        printer = PrinterIO(
            set_job_on_hold=lambda on: self._printer.set_job_on_hold(on),
            send=lambda lines: self._printer.commands(list(lines), tags=set(TAGS)),
        )
        folder = Path(self.get_plugin_data_folder())
        self._node = node = PrinterNode(
            settings, self._notify, job_commands(control, settings.allow_cancel), printer, folder
        )
        send = lambda message: self._plugin_manager.send_plugin_message(self._identifier, message)  # noqa: E731
        max_z = settings.safety.max_z or None
        self._dashboard = Dashboard(
            node.runtime, node.topics.root, node.me.node_id, send, URLS, settings.safety.margin, max_z
        )
        self._dashboard.start()  # subscribes before the node connects: restored on every connect
        self._follower = LayerFollower(node.record_layer, node.at_layer, node.tables)
        self.comm_hooks.attach(self._follower, node.holds, node.record_fan)
        self.replies.driver = node.holds
        self._node.snapshot = self._snapshot
        FLAVOUR.attach(settings.gcode.flavour, node.holds, self._follower)
        self._node.start()
        self._logger.info("connecting to MQTT broker %s", settings.mqtt.where)

    def _stop_node(self) -> None:
        self.comm_hooks.detach()
        dashboard, self._dashboard = self._dashboard, None
        if dashboard is not None:
            dashboard.stop()
        self.replies.driver = None
        node, self._node = self._node, None
        if node is not None:
            node.stop()

    def _snapshot(self) -> Snapshot:
        """Read OctoPrint's current state (memory only); called from the node's worker thread."""
        profile = self._printer_profile_manager.get_current_or_default() or {}
        return Snapshot(
            data=self._printer.get_current_data() or {},
            temperatures=self._printer.get_current_temperatures() or {},
            connection=tuple(self._printer.get_current_connection() or ()),
            profile=dict(profile),
        )

    def _notify(self, message: dict[str, Any]) -> None:
        """Push a plugin message to the UI; the last broker and hold state are kept for new pages."""
        if "broker" in message:
            self._broker_message = message
        if "hold" in message:
            self._hold_message = message
        self._plugin_manager.send_plugin_message(self._identifier, message)

    # ------------------------------------------------------------------- UI
    def get_template_configs(self) -> list[dict[str, Any]]:
        # templates/printmesh_{settings,navbar}.jinja2 bound by static/js/printmesh.js; _tab by printmesh_dashboard.js
        return [
            {"type": "settings", "name": "printmesh", "custom_bindings": True},
            {"type": "navbar", "custom_bindings": True},
            {"type": "tab", "name": "Dashboard", "custom_bindings": True},
        ]

    def is_template_autoescaped(self) -> bool:
        return True

    def get_assets(self) -> dict[str, list[str]]:
        js = ["printmesh.js", "printmesh_format.js", "printmesh_widgets.js", "printmesh_dashboard.js"]
        return {"js": [f"js/{name}" for name in js], "css": ["css/printmesh_dashboard.css"]}

    # ------------------------------------------------------------- settings
    def get_settings_defaults(self) -> dict[str, Any]:
        return DEFAULTS

    def get_settings_restricted_paths(self) -> dict[str, list[list[str]]]:
        return {"admin": [list(path) for path in RESTRICTED]}  # secrets are not shown to plain users

    def get_settings_version(self) -> int:
        return SETTINGS_VERSION

    def on_settings_migrate(self, target: int, current: int | None) -> None:
        migrated = migrate(self._settings.get([], merged=False) or {}, current)
        for key, value in migrated.items():
            self._settings.set([key], value)

    def on_settings_save(self, data: dict[str, Any]) -> dict[str, Any]:
        saved: dict[str, Any] = octoprint.plugin.SettingsPlugin.on_settings_save(self, data)
        self._stop_node()  # reconnect with the new settings, off the request if slow
        self._start_node()
        return saved

    # --------------------------------------------------------------- events
    def on_event(self, event: str, payload: dict[str, Any] | None) -> None:
        if event == "ClientAuthed":  # a page opened now: tell it the current broker and hold state
            for message in (self._broker_message, self._hold_message):
                if message is not None:
                    self._plugin_manager.send_plugin_message(self._identifier, message)
        node, follower = self._node, self._follower
        if node is None or follower is None:
            return
        node.record_event(event, payload)  # enqueue only
        if event == "PositionUpdate":  # an M114 reply: a hold's origin (read only while a hold runs)
            node.holds.position(payload)
        elif event == "PrintStarted":
            node.holds.print_started((payload or {}).get("path"), time.time())
        if event in FILE_EVENTS:
            self._on_file_event(event, payload or {}, node, follower)
        elif event in STOPS:
            follower.end()
            self.comm_hooks.on_print_end()
            node.holds.print_stopped(STOPS[event])
        if event in ("Connected", "Disconnected"):
            node.holds.connection_changed()  # a new connection: nothing is known to be homed
        if event == "Disconnected":
            FLAVOUR.forget()

    def _on_file_event(self, event: str, payload: dict[str, Any], node: PrinterNode, follower: LayerFollower) -> None:
        """Scan files for their layers before they are printed (on the worker; cached by version).

        FileAdded and FileSelected queue a scan that only fills the cache, so the comm thread
        finds the table at the print's first line. At PrintStarted the print's table is
        published (from the cache: no rescan) and handed to the follower, which takes it over
        from the live fallback if the print outran the scan.
        """
        if event in FORGETS:
            for key in ("path", "source_path", "destination_path"):
                if isinstance(payload.get(key), str):
                    node.tables.forget(payload[key])
            return
        origin = payload.get("storage", payload.get("origin"))
        path = payload.get("path")
        if origin != "local" or not isinstance(path, str) or not path.lower().endswith(GCODE_SUFFIXES):
            return
        disk_path = self._file_manager.path_on_disk("local", path)
        if event == "FileSelected":
            follower.select(path, disk_path)
        elif event == "PrintStarted":
            follower.started(path)
        node.request_scan(path, disk_path, follower.install, follower.flavour, publish=event == "PrintStarted")

    def on_file_preprocess(self, path: str, file_object: Any, *args: Any, **kwargs: Any) -> Any:
        """``octoprint.filemanager.preprocessor``: a file is about to be (over)written.

        Its cached layer table is dropped before the new bytes land, so a print of the new
        version can never follow the old one's table. A G-code file gets the layer marks
        (``gcode.marks``, default on) when it is saved: see ``marked_upload``.
        """
        node, follower = self._node, self._follower
        if node is None:
            return None
        node.tables.forget(path)
        if not node.settings.gcode.marks or not path.lower().endswith(GCODE_SUFFIXES) or follower is None:
            return None
        return MarkedUpload(file_object, follower.flavour)

    # ------------------------------------------------------- software update
    def get_update_information(self) -> dict[str, Any]:
        return {
            "printmesh": {
                "displayName": "printmesh",
                "displayVersion": self._plugin_version,
                "type": "github_release",
                "user": "printmesh",
                "repo": "printmesh",
                "current": self._plugin_version,
                "pip": "https://github.com/printmesh/printmesh/archive/{target_version}.zip#subdirectory=bridge_octoprint",
            }
        }


__plugin_implementation__ = PrintmeshPlugin()
__plugin_hooks__ = {
    "octoprint.plugin.softwareupdate.check_config": __plugin_implementation__.get_update_information,
    "octoprint.access.permissions": additional_permissions,  # PLUGIN_PRINTMESH_SHELL_OUTPUTS
    "octoprint.server.http.routes": __plugin_implementation__.http_routes,  # camera previews, see preview_route
    # the comm thread's hooks go straight to their bodies: the layers and the hold, its echo tokens to the hold;
    # no gcode.received hook (called for every ok): the M114 position comes as the PositionUpdate event
    "octoprint.comm.protocol.gcode.queuing": __plugin_implementation__.comm_hooks.on_gcode_queuing,
    "octoprint.comm.protocol.action": __plugin_implementation__.replies.on_action,
    # a marked file's layer starts and tracked lines (layers.upload_marks): only '@' lines come here
    "octoprint.comm.protocol.atcommand.queuing": __plugin_implementation__.comm_hooks.on_atcommand,
    # drops a file's cached layer table before OctoPrint writes a new version of it (no I/O)
    "octoprint.filemanager.preprocessor": __plugin_implementation__.on_file_preprocess,
}
