"""``printmesh <component> --config FILE``: one entry point for every installed component."""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

from printmesh_core import __version__
from printmesh_core.agent import ComponentSpec
from printmesh_core.config import ConfigError, effective_yaml, load_settings

KNOWN = {
    "host": ("host metrics and configured shell commands", "printmesh-host"),
    "sensors": ("DHT temperature and humidity sensors", "printmesh-sensors"),
    "camera": ("cameras: previews and captures on request", "printmesh-camera"),
    "coordinator": ("layer-capture orchestration", "printmesh-coordinator"),
}
EXIT_CONFIG = 2


def installed_names() -> set[str]:
    """Names of the installed components, without importing them."""
    return {ep.name for ep in entry_points(group="printmesh.components")}


def load_component(name: str) -> ComponentSpec | None:
    """Import only the requested component, so an agent carries no other agent's modules."""
    for ep in entry_points(group="printmesh.components", name=name):
        try:
            spec = ep.load()
        except Exception as exc:
            print(f"printmesh: component '{name}' failed to load: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None
        if isinstance(spec, ComponentSpec):
            return spec
    return None


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
    for name, (summary, _) in KNOWN.items():
        p = _component_parser(sub, name, summary)
        if spec is not None and spec.name == name and spec.add_arguments is not None:
            spec.add_arguments(p)
    up = sub.add_parser(
        "up",
        help="the main job: a broker (embedded when none is configured), every agent, OctoPrint and a print",
        description="Start a broker if none is configured, run the installed agents, and print every message. "
        "With --octoprint, also run OctoPrint with its virtual printer and the bridge, print --print's file "
        "with the coordinator capturing, show the progress instead of the raw messages, and stop at the end.",
    )
    up.add_argument("-c", "--config", type=Path, metavar="FILE", help="YAML config passed to every agent.")
    up.add_argument("--no-view", action="store_true", help="Do not print the live message view.")
    up.add_argument(
        "--broker",
        choices=["auto", "mosquitto", "iotcore"],
        default="auto",
        help="Broker to start when none is configured (auto: mosquitto if installed, else iotcore).",
    )
    up.add_argument("--broker-port", type=int, default=1883, help="Port of the started broker (default 1883).")
    up.add_argument("--duration", type=float, default=0, help="Stop after this many seconds (0 = run until Ctrl-C).")
    up.add_argument("--octoprint", type=Path, metavar="VENV", help="OctoPrint's venv, with the bridge.")
    up.add_argument("--print", dest="gcode", type=Path, metavar="GCODE", help="File to print (with --octoprint).")
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
            print(f"printmesh: component '{name}' is not installed (pip install {KNOWN[name][1]})", file=sys.stderr)
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
    # Only the component named first is imported, and only to add its own options.
    spec = load_component(argv[0]) if argv and argv[0] in KNOWN and argv[0] in installed_names() else None
    args = build_parser(spec).parse_args(argv)
    if args.command in KNOWN:
        return run_component(args.command, args, spec)
    if args.command == "schemas":
        from printmesh_core.schemas import write_schemas

        for path in write_schemas(args.out):
            print(path)
        return 0
    from printmesh_core.up import run_up

    return run_up(
        args.config, view=not args.no_view, duration=args.duration, broker=args.broker, port=args.broker_port,
        octoprint=args.octoprint, gcode=args.gcode,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
