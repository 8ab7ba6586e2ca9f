"""The one registry of command names (printmesh_core.components) against what is installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from printmesh_core.components import COMPONENT_GROUP, COMPONENTS, TOOL_GROUP, TOOLS

REPO = Path(__file__).resolve().parents[2]


def test_every_entry_point_is_in_the_registry_with_its_distribution():
    for group, table in ((COMPONENT_GROUP, COMPONENTS), (TOOL_GROUP, TOOLS)):
        found = {ep.name: ep for ep in entry_points(group=group)}
        assert set(found) == set(table), (group, sorted(found), sorted(table))  # the dev venv installs every unit
        for name, ep in found.items():
            assert ep.dist is not None and ep.dist.name == table[name].distribution, (name, ep.dist)


def _imports(folder: Path) -> dict[str, set[str]]:
    """Module file -> every module it imports (at any level, lazily or not)."""
    out: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        out[str(path.relative_to(REPO))] = names
    return out


def test_no_device_package_imports_the_devkit_and_the_devkit_never_imports_the_cli():
    for folder in ("core/src", "agents", "bridge_octoprint/src", "coordinator/src"):
        for path, names in _imports(REPO / folder).items():
            assert not any(n.startswith("printmesh_devkit") for n in names), path
    for path, names in _imports(REPO / "devkit/src").items():
        assert "printmesh_core.cli" not in names, f"{path}: the cli reaches up through the entry point, not back"
    code = "import sys, printmesh_core.cli; sys.exit(any(m.startswith('printmesh_devkit') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
