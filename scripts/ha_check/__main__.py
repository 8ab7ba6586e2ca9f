"""scripts/ha-check COMPONENT... | all: run a component against a real Home Assistant and check its entities.

Each component gets its own Home Assistant core 2024.3 (headless, private mosquitto, via
shared/tools/ha_check.sh) and a scenario: live entities as the table in ha_check/table.py says,
foreign messages, a vanishing device or metric, HA's birth message, going offline. Afterwards
HA's log must hold no warning about us, and the registry one device with our unique ids.

Environment: HA_CHECK (default <checkout>/../shared/tools/ha_check.sh), HA_VENV (default
<checkout>/../ha-venv, installed on first use), PRINTMESH (default: beside this python),
OCTOPRINT_VENV (printer; default <checkout>/.venv-octoprint).

Exit status: 0 all good; 1 a check failed; 2 harness or setup failure; 3 entities missing
(the worst over the components run).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from ha_check.common import Check, Context
from ha_check.harness import REPO, Outcome, SetupError, log, run
from ha_check.table import COMPONENTS

SEVERITY = (0, 1, 3, 2)  # a harness failure outranks missing entities, which outrank a failed check


def scenario(name: str, work: str, node: str, mode: str) -> int:
    """Inside ha_check's namespace: run one component's scenario, write checks.txt."""
    ctx = Context(COMPONENTS[name], node, Path(work), mode, Check())
    try:
        importlib.import_module(f"ha_check.{name}").run(ctx)  # one module per component, loaded alone
    finally:
        ctx.check.write(ctx.out / "checks.txt")
        n = len(ctx.check.results)
        print(f"{n - ctx.check.failed} passed, {ctx.check.failed} failed", flush=True)
    return 1 if ctx.check.failed or not ctx.check.results else 0


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="scripts/ha-check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("components", nargs="+", choices=[*COMPONENTS, "all"], metavar="COMPONENT",
                    help=f"{', '.join(COMPONENTS)} or all")  # fmt: skip
    ap.add_argument("-o", "--out", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "ha-check-out",
                    help="results, one folder per component (default: $TMPDIR/ha-check-out)")  # fmt: skip
    ap.add_argument("-k", "--keep", action="store_true", help="keep the work folders (config, logs)")
    ap.add_argument("-m", "--mode", choices=("auto", "plugin", "driver"), default="auto",
                    help="printer: who announces discovery (default auto: the plugin, if it does)")  # fmt: skip
    ap.add_argument("--node", default=os.environ.get("NODE", "octopi"), help="node id (default octopi)")
    args = ap.parse_args(argv)
    if not args.node or not all(ch.islower() or ch.isdigit() or ch in "_-" for ch in args.node):
        ap.error("--node must be lowercase letters, digits, _ or -")
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["_scenario"]:
        return scenario(*argv[1:5])
    args = parse(argv)
    names = list(COMPONENTS) if "all" in args.components else list(dict.fromkeys(args.components))
    if "printer" in names:
        octoprint = Path(os.environ.get("OCTOPRINT_VENV") or REPO / ".venv-octoprint") / "bin" / "octoprint"
        if not octoprint.exists():
            log(f"ERROR: no OctoPrint at {octoprint} (run scripts/test once, or set OCTOPRINT_VENV)")
            return 2
    outcomes: list[Outcome] = []
    try:
        for name in names:
            outcomes.append(run(COMPONENTS[name], args.node, args.out / name, keep=args.keep, mode=args.mode))
    except SetupError as e:
        log(f"ERROR: {e}")
        return 2
    for o in outcomes:
        log(o.line())
    return max((o.rc for o in outcomes), key=SEVERITY.index, default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
