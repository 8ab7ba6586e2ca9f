"""``printmesh coordinator --preview``: every printer's grid points, checked against a profile.

The profile comes from ``--profile FILE`` when given, else from the bridge's retained
``<printer>/printer/profile`` when the broker answers within a few seconds, else it is
OctoPrint's default (200 × 200 × 200 mm, origin lower left), and the output says which.
Exit status 0 when every plan fits, 1 when any point is out of bounds.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from printmesh_coordinator.bounds import DEFAULT_PROFILE, check_fit, fmt, grid_center
from printmesh_coordinator.config import CoordinatorSettings, PrinterConfig
from printmesh_core import contract
from printmesh_core.config import format_validation_error
from printmesh_core.models.printer import BuildVolume, PrinterProfile
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import Topics

CONNECT_WAIT = 3.0
RETAINED_WAIT = 1.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preview",
        action="store_true",
        help="Print each printer's grid points, mark any out of bounds, and exit (status 1 if any are).",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="With --preview: check against this printer profile (YAML/JSON, as on <printer>/printer/profile, "
        "or only its volume) instead of the bridge's retained one.",
    )


def run_tool(settings: CoordinatorSettings, args: argparse.Namespace) -> int | None:
    if not getattr(args, "preview", False):
        if getattr(args, "profile", None) is not None:
            print("printmesh coordinator: --profile only goes with --preview", file=sys.stderr)
            return 2
        return None
    return preview(settings, args.profile)


def load_profile(path: Path) -> PrinterProfile:
    """A whole profile, or just a build volume (``width``, ``depth``, ``height``, ``origin``...)."""
    data: Any = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("expected a mapping")
    if "volume" in data:
        return PrinterProfile.model_validate({"name": path.stem, **data})
    return PrinterProfile(name=path.stem, volume=BuildVolume.model_validate(data))


def fetch_profiles(settings: CoordinatorSettings, timeout: float = CONNECT_WAIT) -> dict[str, PrinterProfile] | None:
    """The retained profile of every configured printer; None when the broker cannot be reached."""
    logging.getLogger("printmesh").addHandler(logging.NullHandler())  # no reconnect chatter on stderr
    topics = Topics(settings.topic_root, settings.node_id)
    nodes = [p.node for p in settings.coordinator.printers]
    found: dict[str, PrinterProfile] = {}
    lock = threading.Lock()
    client = f"printmesh-{settings.node_id}-coordinator-preview-{os.getpid()}"
    runtime = MqttRuntime(settings.mqtt, settings.topic_root, client)

    def on_profile(node: str, profile: PrinterProfile, message: Message) -> None:
        with lock:
            found[node] = profile

    for node in nodes:
        printer = contract.component(topics, contract.PRINTER, node)
        contract.PRINTER_PROFILE.subscribe(runtime, printer, partial(on_profile, node))
    runtime.start()
    try:
        if not runtime.wait_connected(timeout):
            return None
        deadline = time.monotonic() + RETAINED_WAIT
        while time.monotonic() < deadline:
            with lock:
                if len(found) == len(nodes):
                    break
            time.sleep(0.05)
    finally:
        runtime.stop()
    with lock:
        return dict(found)


def describe_printer(printer: PrinterConfig, profile: PrinterProfile, source: str) -> tuple[list[str], bool]:
    """The preview lines of one printer, and whether its plan fits."""
    fit = check_fit(printer, profile)
    v = profile.volume
    shape = f"{fmt(v.width)} × {fmt(v.depth)} × {fmt(v.height)} mm, {v.form_factor}, origin {v.origin}"
    if v.custom_box is not None:
        shape += ", custom box"
    lines = [f"printer {printer.node}: profile {profile.name!r} ({shape}), {source}"]
    if fit.region is not None:
        lines.append(f"  allowed: {fit.region.describe()} (margin {fmt(printer.margin)} mm)")
    grid = printer.grid
    centre = grid_center(grid, v)
    if grid.points is None:
        where = "the bed centre" if grid.center is None else "configured"
        lines.append(f"  grid: {grid.size}×{grid.size}, spacing {fmt(grid.spacing or 0)} mm, "
                     f"centre ({fmt(centre.x)}, {fmt(centre.y)}) ({where})")  # fmt: skip
    else:
        lines.append(f"  grid: {len(grid.points)} explicit points")
    plan = printer.plan.model_dump(exclude_defaults=True)
    cams = ", ".join(f"{c.tag} ({c.node}/{c.camera})" for c in printer.cameras)
    lines.append(f"  plan: {plan}; Z {fmt(printer.z_clearance)} mm above each layer; cameras: {cams}")
    bad: dict[int, str] = {}
    for index, msg in fit.problems:
        if index is not None:
            bad[index] = msg
    for i, p in enumerate(fit.points):
        mark = "ok" if i not in bad else f"OUT OF BOUNDS: {bad[i].split(' is out of bounds: ', 1)[-1]}"
        lines.append(f"  {i:>3}  x {fmt(p.x):>9}  y {fmt(p.y):>9}  {mark}")
    lines += [f"  OUT OF BOUNDS: {msg}" for index, msg in fit.problems if index is None]
    lines.append(f"  => {len(fit.points)} points fit" if fit.ok else f"  => {fit.refusal(printer.node)}")
    return lines, fit.ok


def preview(settings: CoordinatorSettings, profile_file: Path | None) -> int:
    printers = settings.coordinator.printers
    if not printers:
        print("no printers configured (coordinator.printers is empty): nothing to preview", flush=True)
        return 0
    given: PrinterProfile | None = None
    retained: dict[str, PrinterProfile] | None = {}
    if profile_file is not None:
        try:
            given = load_profile(profile_file)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            detail = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            print(f"printmesh coordinator: cannot use profile {profile_file}: {detail}", file=sys.stderr)
            return 2
    else:
        retained = fetch_profiles(settings)
        if retained is None:
            mq = settings.mqtt
            print(f"# no broker at {mq.where} and no --profile: using OctoPrint's default profile", flush=True)
    all_ok = True
    for printer in printers:
        if given is not None:
            profile, source = given, f"from {profile_file}"
        elif retained and printer.node in retained:
            topics = Topics(settings.topic_root, settings.node_id)
            topic = topics.absolute(contract.PRINTER_PROFILE.topic(topics.component(contract.PRINTER, printer.node)))
            profile, source = retained[printer.node], f"retained on {topic}"
        else:
            why = "no broker" if retained is None else "no retained profile from its bridge"
            profile, source = DEFAULT_PROFILE, f"OctoPrint's default ({why})"
        lines, ok = describe_printer(printer, profile, source)
        all_ok = all_ok and ok
        print("\n".join(lines), flush=True)
    return 0 if all_ok else 1
