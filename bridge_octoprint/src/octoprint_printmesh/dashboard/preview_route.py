"""The Tornado route that serves the latest camera previews (``octoprint.server.http.routes``).

Why Tornado and not the plugin's Flask blueprint: see ``preview_keys``. OctoPrint mounts the
route at ``/plugin/printmesh/live/<node>/<camera>.jpg``; a request needs ``?k=<key>``.
Tornado is imported here only, inside OctoPrint, where it always is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tornado.web

from octoprint_printmesh.dashboard.preview_keys import PreviewKeys

Lookup = Callable[[str, str], "bytes | None"]
PATTERN = r"/live/([^/]+)/([^/]+)\.jpg"  # names are only looked up in memory, never in a path


class PreviewHandler(tornado.web.RequestHandler):  # type: ignore[misc]  # OctoPrint's Tornado
    """GET only; answers 403 without a valid key and 404 when no preview is kept."""

    def initialize(self, keys: PreviewKeys, lookup: Lookup) -> None:
        self._keys = keys
        self._lookup = lookup

    def get(self, node: str, camera: str) -> None:
        self.set_header("Cache-Control", "no-store")
        if not self._keys.valid(self.get_query_argument("k", "")):
            raise tornado.web.HTTPError(403)
        data = self._lookup(node, camera)
        if data is None:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(data)


def preview_routes(keys: PreviewKeys, lookup: Lookup) -> list[tuple[str, type[Any], dict[str, Any]]]:
    return [(PATTERN, PreviewHandler, {"keys": keys, "lookup": lookup})]
