"""The tree's shape (issue 10): small modules, no import cycles, one owner of paho-mqtt.

No broker: this reads the source with ``ast``. Each check is also run on a tiny tree
written to ``tmp_path``, so a detector that cannot fail is caught here too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC_ROOTS = [
    REPO / "core" / "src",
    REPO / "devkit" / "src",
    *sorted((REPO / "agents").glob("*/src")),
    REPO / "bridge_octoprint" / "src",
    REPO / "coordinator" / "src",
]
MAX_LINES = 300
PAHO_OWNER = REPO / "core" / "src" / "printmesh_core" / "mqtt.py"


def packages(roots: list[Path]) -> list[Path]:
    """Top-level package folders under each ``src`` root."""
    return sorted(p for root in roots for p in root.iterdir() if (p / "__init__.py").is_file())


def source_files(roots: list[Path]) -> list[Path]:
    return sorted(f for pkg in packages(roots) for f in pkg.rglob("*.py"))


def module_name(path: Path, src_root: Path) -> str:
    parts = list(path.relative_to(src_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions too), except under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                yield from _runtime_imports(stmt) if not isinstance(stmt, ast.Import | ast.ImportFrom) else [stmt]
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _runtime_imports(child)


def imported_names(path: Path, module: str) -> set[str]:
    """Absolute dotted names a module imports at run time; ``from a import b`` gives ``a.b`` and ``a``."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, base] if base else anchor)
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> modules of the same package it imports (function-level imports included)."""
    src_root = package.parent
    files = {module_name(f, src_root): f for f in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(path, module):
            if name in files:
                targets.add(name)
            elif name.rpartition(".")[0] in files and name.rpartition(".")[0] != module:
                targets.add(name.rpartition(".")[0])  # ``from pkg import NAME``: NAME lives in pkg
        graph[module] = targets - {module} if path.name == "__init__.py" else targets
    for module in graph:  # ``from pkg import sub`` also adds ``pkg``; drop that edge when sub is a module
        graph[module] = {t for t in graph[module] if not any(o.startswith(t + ".") for o in graph[module])}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def oversized(roots: list[Path]) -> list[str]:
    out = []
    for f in source_files(roots):
        lines = len(f.read_text().splitlines())
        if lines > MAX_LINES:
            out.append(f"{f.relative_to(REPO) if f.is_relative_to(REPO) else f}: {lines} lines")
    return out


def paho_importers(roots: list[Path], owner: Path) -> list[str]:
    out = []
    for f in source_files(roots):
        tree = ast.parse(f.read_text(), str(f))
        for node in ast.walk(tree):  # TYPE_CHECKING imports count here: paho types stay in mqtt.py
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                mods = [node.module or ""]
            if f != owner and any(m == "paho" or m.startswith("paho.") for m in mods):
                out.append(f"{f}:{node.lineno}")
    return out


# ---------------------------------------------------------------------------- the real tree
def test_the_source_roots_exist() -> None:
    assert all(root.is_dir() for root in SRC_ROOTS), SRC_ROOTS
    assert len(packages(SRC_ROOTS)) >= 7, packages(SRC_ROOTS)


def test_no_source_file_is_over_300_lines() -> None:
    offenders = oversized(SRC_ROOTS)
    print("\n".join(offenders))
    assert not offenders, "over 300 lines:\n" + "\n".join(offenders)


def test_no_package_has_an_import_cycle() -> None:
    found = {pkg.name: cycles(import_graph(pkg)) for pkg in packages(SRC_ROOTS)}
    found = {name: c for name, c in found.items() if c}
    assert not found, "import cycles: " + "; ".join(f"{n}: {' <-> '.join(c)}" for n, cs in found.items() for c in cs)


def test_only_mqtt_py_imports_paho() -> None:
    assert PAHO_OWNER.is_file()
    assert paho_importers(SRC_ROOTS, PAHO_OWNER) == []
    assert paho_importers(SRC_ROOTS, REPO / "nowhere.py"), "mqtt.py itself should be seen importing paho"


# ------------------------------------------------------------------- the detectors can fail
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    return src


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import f\n",
            "pkg/b.py": "def f():\n    from . import c\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "from pkg import a\n",
        },
    )
    assert cycles(import_graph(src / "pkg")) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_a_type_checking_import_is_not_a_cycle(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import f\n",
            "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\ndef f(): ...\n",
        },
    )
    assert cycles(import_graph(src / "pkg")) == []


def test_a_long_file_and_a_stray_paho_import_are_reported(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/mqtt.py": "import paho.mqtt.client\n",
            "pkg/long.py": "x = 1\n" * 301,
            "pkg/other.py": "def f():\n    from paho.mqtt import client\n",
        },
    )
    assert [o.rsplit("/", 1)[-1] for o in oversized([src])] == ["long.py: 301 lines"]
    assert [p.rsplit("/", 1)[-1] for p in paho_importers([src], src / "pkg" / "mqtt.py")] == ["other.py:2"]
