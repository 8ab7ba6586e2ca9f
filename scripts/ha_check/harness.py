"""The outside of one check: find and run the shared Home Assistant harness, then read what it left.

ha_check.sh (shared/tools/ next to the checkouts, or the copy in this folder) starts a private mosquitto and a
real Home Assistant, runs our scenario inside its network namespace and dumps HA's states,
registry and warnings. Here: the paths, the call, HA's log and the registry, for any component.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ha_check.common import Check
from ha_check.table import Component

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


class SetupError(Exception):
    """Something the checks need is missing: one line that says what, and how to fix it."""


def log(msg: str) -> None:
    print(f"[ha-check] {msg}", file=sys.stderr, flush=True)


def harness_path() -> Path:
    """$HA_CHECK, else the team's shared/tools/ha_check.sh beside the checkout, else the copy
    shipped in this folder, so that a clone on its own (CI) runs the same checks."""
    given = os.environ.get("HA_CHECK")
    shared = REPO.parent / "shared" / "tools" / "ha_check.sh"
    path = Path(given) if given else shared if shared.is_file() else SCRIPTS / "ha_check" / "ha_check.sh"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise SetupError(f"Home Assistant harness not found at {path} (set HA_CHECK to its path)")
    return path


def ha_venv(harness: Path) -> Path:
    """$HA_VENV, else ha-venv beside the checkout; installed on first use (about 1 min, ~710 MB)."""
    venv = Path(os.environ.get("HA_VENV") or REPO.parent / "ha-venv")
    if not (venv / "bin" / "hass").exists():
        log(f"no Home Assistant in {venv}: installing (about 1 min, ~710 MB)")
        if subprocess.run([str(harness), "--install"], env=dict(os.environ, HA_VENV=str(venv))).returncode:
            raise SetupError(f"installing Home Assistant into {venv} failed")
    return venv


@dataclass
class Outcome:
    component: str
    rc: int  # 0 ok, 1 a check failed, 2 harness failure, 3 expected entities missing
    passed: int = 0
    failed: int = 0
    our_warnings: int = 0

    def line(self) -> str:
        if self.rc == 2:
            return f"{self.component}: harness failure (Home Assistant or the broker did not run; see above)"
        warn = "no HA warnings" if not self.our_warnings else f"{self.our_warnings} HA warnings about us"
        return f"{self.component}: {self.passed} checks passed, {self.failed} failed, {warn}"


def run(comp: Component, node: str, out: Path, *, keep: bool, mode: str) -> Outcome:
    harness = harness_path()
    venv = ha_venv(harness)
    work = Path(tempfile.mkdtemp(prefix=f"ha-check-{comp.name}."))
    expect = " ".join(comp.ids(node, required_only=True))
    log(f"{comp.name}: expected {expect}")
    scenario = [sys.executable, "-m", "ha_check", "_scenario", comp.name, str(work), node, mode]
    env = dict(os.environ, HA_VENV=str(venv), KEEP="1" if keep else "0",
               PYTHONPATH=os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")])))  # fmt: skip
    cmd = [str(harness), "-o", str(out), "-w", "20", "-t", str(comp.timeout), "-e", expect, "--", *scenario]
    try:
        rc = subprocess.run(cmd, env=env).returncode
    finally:
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if rc == 2 or not (out / "states.json").exists():
        log(f"{comp.name}: ha_check failed (rc {rc})")
        return Outcome(comp.name, 2)
    if rc:
        log(f"{comp.name}: ha_check/scenario exit status {rc} (see {out}/command.log, checks.txt)")
    after = Check(quiet_prefix="\0")
    warnings = check_log(comp, node, out, after)
    check_registry(comp, node, out, after)
    after.write(out / "checks.txt")
    lines = (out / "checks.txt").read_text(encoding="utf-8").splitlines()
    passed, failed = sum(x.startswith("PASS") for x in lines), sum(x.startswith("FAIL") for x in lines)
    code = 0 if rc == 0 and not after.failed else (3 if rc == 3 else 1)
    log(f"checks: {out}/checks.txt; entities: {out}/summary.txt")
    return Outcome(comp.name, code, passed, failed, warnings)


def check_log(comp: Component, node: str, out: Path, check: Check) -> int:
    """HA's log has no WARNING/ERROR line about mqtt, templates, printmesh or our entities."""
    platforms = sorted({re.escape(e.platform) + r"\." for e in comp.entities})
    pattern = re.compile("|".join(["mqtt", "template", "printmesh", f"{node}_", f"/{node}/", *platforms]), re.I)
    lines = (out / "ha_warnings.txt").read_text(errors="replace").splitlines()
    ours = [x for x in lines if pattern.search(x)]
    (out / "our_warnings.txt").write_text("".join(x + "\n" for x in ours))
    check(not ours, "HA log: no warning/error about mqtt, templates or our entities")
    for x in ours:
        log(f"  {x}")
    others = [x for x in lines if x.strip() and not pattern.search(x)]
    if others:
        log("other HA warnings (not counted):")
        for x in others:
            log(f"  {x}")
    return len(ours)


def check_registry(comp: Component, node: str, out: Path, check: Check) -> None:
    """One device named after the node; unique ids, names and categories as the table says."""
    reg = json.loads((out / "registry.json").read_text())
    ents = {e["entity_id"]: e for e in reg["entities"]}
    devs = {d["id"]: d for d in reg["devices"]}
    bad: list[str] = []
    device_ids = set()
    for row in comp.entities:
        eid = row.entity_id(node)
        e = ents.get(eid)
        if e is None:
            if not row.optional:
                bad.append(f"{eid}: not in the entity registry")
            continue
        device_ids.add(e["device_id"])
        dev = devs.get(e["device_id"], {})
        if e["platform"] != "mqtt" or e["unique_id"] != f"{comp.ha_node(node)}_{row.object_id}":
            bad.append(f"{eid}: platform {e['platform']} unique_id {e['unique_id']}")
        repeats = row.name.lower().startswith(dev.get("name", "").lower())
        if not e["has_entity_name"] or e["original_name"] != row.name or repeats:
            bad.append(f"{eid}: has_entity_name {e['has_entity_name']} original_name {e['original_name']!r}")
        if (e["entity_category"] == "diagnostic") != row.diagnostic:
            bad.append(f"{eid}: entity_category {e['entity_category']}")
    if len(device_ids) != 1:
        bad.append(f"entities spread over {len(device_ids)} devices")
    else:
        dev = devs.get(next(iter(device_ids)), {})
        if dev.get("name") != node or ["mqtt", f"printmesh_{node}"] not in dev.get("identifiers", []):
            bad.append(f"device {dev.get('name')!r} {dev.get('identifiers')}")
    for b in bad:
        log(f"FAIL  registry: {b}")
    check(not bad, "registry: one device, unique ids, names, categories")
