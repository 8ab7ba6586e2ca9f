"""OctoPrint's side of the tab: the API the page calls, the image and kiosk routes, the permission.

A mixin for the plugin class, which adds ``SimpleApiPlugin`` and ``BlueprintPlugin``.
Every endpoint checks OctoPrint's permissions: the dashboard's data needs STATUS, the
images WEBCAM (the live previews through a key that only ``watch`` hands out, to users with
WEBCAM: see ``preview_keys``), saving the layout SETTINGS, and the shell command outputs the plugin's own
SHELL_OUTPUTS permission, which only the admins group has by default. The outputs are never
in a plugin message (those reach every logged-in page); only this API hands them out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import flask
import octoprint.plugin
from octoprint.access import ADMIN_GROUP
from octoprint.access.permissions import Permissions

from octoprint_printmesh.dashboard.layout import lenient, normalise
from octoprint_printmesh.dashboard.preview_keys import PreviewKeys
from octoprint_printmesh.dashboard.service import Dashboard, Urls
from printmesh_core.config import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
SHELL_PERMISSION = "SHELL_OUTPUTS"
KIOSK = "?printmesh=kiosk#tab_plugin_printmesh"
URLS = Urls(
    preview=lambda node, camera: f"plugin/printmesh/live/{node}/{camera}.jpg",  # Tornado: preview_route
    image=lambda node, capture_id: f"plugin/printmesh/capture/{node}/{capture_id}.jpg",
)


def additional_permissions(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """``octoprint.access.permissions``: becomes ``Permissions.PLUGIN_PRINTMESH_SHELL_OUTPUTS``."""
    return [
        {
            "key": SHELL_PERMISSION,
            "name": "Shell command outputs",
            "description": "See the outputs of the host agents' shell commands on the Dashboard tab",
            "roles": ["view"],
            "dangerous": True,
            "default_groups": [ADMIN_GROUP],
        }
    ]


def route(rule: str) -> Callable[[F], F]:
    """OctoPrint's ``BlueprintPlugin.route`` for a GET view, typed."""
    decorator: Callable[[F], F] = octoprint.plugin.BlueprintPlugin.route(rule, methods=["GET"])
    return decorator


def may_see_shell() -> bool:
    return bool(Permissions.PLUGIN_PRINTMESH_SHELL_OUTPUTS.can())


def _jpeg(data: bytes | None, cache: str) -> flask.Response:
    if data is None:
        flask.abort(404)
    return flask.Response(data, mimetype="image/jpeg", headers={"Cache-Control": cache})


class DashboardUi:
    """Needs the plugin's ``_dashboard``, ``_settings``, ``_plugin_manager`` and ``_identifier``."""

    _dashboard: Dashboard | None = None
    _settings: Any
    _plugin_manager: Any
    _identifier: str
    _preview_keys: PreviewKeys | None = None

    def preview_keys(self) -> PreviewKeys:
        if self._preview_keys is None:
            self._preview_keys = PreviewKeys()
        return self._preview_keys

    def http_routes(self, *args: Any, **kwargs: Any) -> list[tuple[str, type[Any], dict[str, Any]]]:
        """``octoprint.server.http.routes``: the camera previews, served without Flask."""
        from octoprint_printmesh.dashboard.preview_route import preview_routes

        def lookup(node: str, camera: str) -> bytes | None:
            dashboard = self._dashboard
            return dashboard.preview(node, camera) if dashboard is not None else None

        return preview_routes(self.preview_keys(), lookup)

    # ------------------------------------------------------------ SimpleApiPlugin
    def get_api_commands(self) -> dict[str, list[str]]:
        return {"watch": ["client"], "leave": ["client"], "layout": ["widgets"]}

    def is_api_protected(self) -> bool:
        return True

    def on_api_command(self, command: str, data: dict[str, Any]) -> Any:
        if command == "layout":
            return self._save_layout(data.get("widgets"))
        if not Permissions.STATUS.can():
            flask.abort(403)
        dashboard, client = self._dashboard, str(data.get("client", ""))[:64]
        if command == "leave":
            if dashboard is not None:
                dashboard.leave(client)
            return flask.jsonify({})
        body: dict[str, Any] = {"layout": self.layout(), "shell": may_see_shell()}
        body["can_edit"] = bool(Permissions.SETTINGS.can())
        if Permissions.WEBCAM.can():
            body["preview_key"] = self.preview_keys().issue()
        snapshot = dashboard.watch(client, bool(data.get("full"))) if dashboard is not None else None
        return flask.jsonify({**body, **(snapshot or {})})

    def on_api_get(self, request: Any) -> Any:
        if "shell" not in request.values:
            flask.abort(400)
        if not may_see_shell():
            flask.abort(403)
        dashboard = self._dashboard
        return flask.jsonify({"outputs": dashboard.shell_outputs() if dashboard is not None else []})

    def layout(self) -> list[dict[str, Any]]:
        return lenient(self._settings.get(["dashboard", "widgets"]))

    def _save_layout(self, widgets: Any) -> Any:
        if not Permissions.SETTINGS.can():
            flask.abort(403)
        try:
            layout = normalise(widgets)
        except ConfigError as exc:
            return flask.make_response(flask.jsonify({"error": str(exc)}), 400)
        self._settings.set(["dashboard", "widgets"], layout)
        self._settings.save()
        self._plugin_manager.send_plugin_message(self._identifier, {"layout": layout})  # every open tab follows
        return flask.jsonify({"layout": layout})

    # ------------------------------------------------------------ BlueprintPlugin
    def is_blueprint_protected(self) -> bool:
        return False  # each route checks its own permission (the kiosk sends a stranger to the login page)

    def is_blueprint_csrf_protected(self) -> bool:
        return True

    @route("/kiosk")
    def kiosk(self) -> Any:
        """The one kiosk URL: the Dashboard tab without OctoPrint's navigation."""
        root = flask.request.script_root + "/"
        if not Permissions.STATUS.can():
            return flask.redirect(root + "login?redirect=" + flask.request.script_root + "/plugin/printmesh/kiosk")
        return flask.redirect(root + KIOSK)

    @route("/capture/<node>/<capture_id>.jpg")
    def capture(self, node: str, capture_id: str) -> Any:
        if not Permissions.WEBCAM.can():
            flask.abort(403)
        dashboard = self._dashboard
        return _jpeg(dashboard.image(node, capture_id) if dashboard else None, "private, max-age=86400")
