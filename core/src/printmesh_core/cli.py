"""``printmesh <component> --config FILE``: one entry point for every installed component.

Tools (``printmesh up``, from printmesh-devkit) are found through their entry point and get
the rest of the command line; the core never imports them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from printmesh_core import __version__
from printmesh_core.agent import ComponentSpec
from printmesh_core.components import (
    COMPONENT_GROUP,
    COMPONENTS,
    TOOL_GROUP,
    TOOLS,
    installed,
    installed_names,
    not_installed,
)  # fmt: skip
from printmesh_core.config import ConfigError, effective_yaml, load_settings

EXIT_CONFIG = 2


def load_component(name: str) -> ComponentSpec | None:
    """Import only the requested component, so an agent carries no other agent's modules."""
    ep = installed(COMPONENT_GROUP).get(name)
    if ep is None:
        return None
    try:
        spec = ep.load()
    except Exception as exc:
        print(f"printmesh: component '{name}' failed to load: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    return spec if isinstance(spec, ComponentSpec) else None


def run_tool(name: str, argv: list[str]) -> int:
    """``printmesh up ...``: the tool's own entry point parses the rest of the command line."""
    ep = installed(TOOL_GROUP).get(name)
    if ep is None:
        print(f"{not_installed(TOOLS[name])}, or run ./scripts/demo", file=sys.stderr)
        return EXIT_CONFIG
    tool: Callable[[list[str]], int] = ep.load()
    return tool(argv)


def _component_parser(sub: argparse._SubParsersAction, name: str, summary: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=f"Run the {name} component: {summary}.",
        epilog=(
            "Settings come from the YAML file, overridden by PRINTMESH_* environment variables with '__' "
            "for nesting (PRINTMESH_MQTT__HOST=broker PRINTMESH_MQTT__PORT=1883). With no file and no "
            "variables, the broker is localhost:1883 and the node id is the hostname. "
            "Invalid settings exit with status 2 and name the key."
        ),
    )
    p.add_argument("-c", "--config", type=Path, metavar="FILE", help="YAML config file (optional).")
    p.add_argument(
        "--check", action="store_true", help="Validate the config, print the effective config (secrets masked), exit."
    )
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="Override log_level.")
    return p


def build_parser(spec: ComponentSpec | None = None) -> argparse.ArgumentParser:
    """With ``spec`` (the component named on the command line), its own options are added too."""
    parser = argparse.ArgumentParser(
        prog="printmesh",
        description="printmesh: MQTT sensors, cameras and layer capture for OctoPrint printers.",
    )
    parser.add_argument("--version", action="version", version=f"printmesh {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, entry in COMPONENTS.items():
        p = _component_parser(sub, name, entry.summary)
        if spec is not None and spec.name == name and spec.add_arguments is not None:
            spec.add_arguments(p)
    for name, entry in TOOLS.items():  # parsed by the tool itself (see run_tool); listed here for --help
        sub.add_parser(name, help=f"{entry.summary} ({entry.distribution}; printmesh {name} --help)")
    schemas = sub.add_parser("schemas", help="write the JSON Schema of every payload model")
    schemas.add_argument("--out", type=Path, default=Path("docs/schemas"), help="output folder")
    return parser


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


def run_component(name: str, args: argparse.Namespace, spec: ComponentSpec | None = None) -> int:
    spec = spec or load_component(name)
    if spec is None:
        if name not in installed_names():
            print(not_installed(COMPONENTS[name]), file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_settings(spec.settings, args.config)
    except ConfigError as exc:
        print(f"printmesh {name}: invalid config: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"# printmesh {name}: config OK", flush=True)
        print(effective_yaml(settings), end="")
        return 0
    if spec.run_tool is not None:
        status = spec.run_tool(settings, args)
        if status is not None:
            return status
    setup_logging(args.log_level or settings.log_level)
    return spec.factory(settings).run()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TOOLS:
        return run_tool(argv[0], argv[1:])
    # Only the component named first is imported, and only to add its own options.
    spec = load_component(argv[0]) if argv and argv[0] in COMPONENTS and argv[0] in installed_names() else None
    args = build_parser(spec).parse_args(argv)
    if args.command in COMPONENTS:
        return run_component(args.command, args, spec)
    from printmesh_core.schemas import write_schemas

    for path in write_schemas(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
