"""The suite's OctoPrint: ``printmesh_devkit.virtual_octoprint`` from ``.venv-octoprint``.

OctoPrint lives in its own virtualenv (``.venv-octoprint``, made by scripts/test with the
core and the bridge installed editable), exactly as on a Pi; the tests drive it over REST
and watch MQTT. Set OCTOPRINT_VENV to use another one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from printmesh_devkit import virtual_octoprint
from printmesh_devkit.virtual_octoprint import API_KEY, DISABLED, OctoPrint, write_basedir

REPO = Path(__file__).resolve().parent.parent
__all__ = ["API_KEY", "DISABLED", "REPO", "OctoPrint", "octoprint_venv", "start_octoprint", "write_basedir"]


def octoprint_venv() -> Path:
    return Path(os.environ.get("OCTOPRINT_VENV", REPO / ".venv-octoprint"))


def start_octoprint(basedir: Path, plugin_settings: dict[str, Any]) -> OctoPrint:
    return virtual_octoprint.start_octoprint(octoprint_venv(), basedir, plugin_settings)
