"""A Pi that reads a DHT sensor gets no OpenCV and no numpy.

pip resolves ``./core ./agents/sensors[dht]`` (``--dry-run --report``: nothing is
installed) against the package index. pip evaluates environment markers for the
machine it runs on, not for a Raspberry Pi, so the test then re-evaluates every
resolved package's requirements under Raspberry Pi OS markers (aarch64, armv7l,
armv6l): any requirement that applies only there must already be in the resolution,
so the Pi's set of packages is this one. Needs the package index, like the
OctoPrint venv check.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(r"^(numpy|opencv.*|cv2)$")
PI_MACHINES = ("aarch64", "armv7l", "armv6l")


def resolve(tmp_path: Path, *targets: str) -> list[dict[str, Any]]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), *targets],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    installs: list[dict[str, Any]] = json.loads(report.read_text())["install"]
    return installs


def names(installs: list[dict[str, Any]]) -> set[str]:
    return {canonicalize_name(i["metadata"]["name"]) for i in installs}


def missing_on_a_pi(installs: list[dict[str, Any]]) -> list[str]:
    resolved = names(installs)
    base = default_environment()
    base.update(sys_platform="linux", platform_system="Linux", os_name="posix", python_version="3.11")
    missing = []
    for machine in PI_MACHINES:
        env = {**base, "platform_machine": machine}
        for item in installs:
            extras = item.get("requested_extras") or [""]
            for text in item["metadata"].get("requires_dist") or []:
                req = Requirement(text)
                applies = req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras)
                if applies and canonicalize_name(req.name) not in resolved:
                    missing.append(f"{machine}: {item['metadata']['name']} needs {text}")
    return missing


def test_a_dht_pi_resolves_without_opencv_or_numpy(tmp_path):
    # gpiod: Blinka imports it on a Raspberry Pi without declaring it; a Pi installs it too.
    installs = resolve(tmp_path, "./core", "./agents/sensors[dht]", "gpiod")
    resolved = names(installs)
    assert {"printmesh-core", "printmesh-sensors", "adafruit-circuitpython-dht", "adafruit-blinka", "gpiod"} <= resolved
    assert not {n for n in resolved if FORBIDDEN.match(n)}, sorted(resolved)
    assert missing_on_a_pi(installs) == [], "a Raspberry Pi would resolve more packages than this machine"
    mentioned = {
        canonicalize_name(Requirement(t).name)
        for i in installs
        for t in i["metadata"].get("requires_dist") or []
        if FORBIDDEN.match(canonicalize_name(Requirement(t).name))
    }
    assert not mentioned, f"some package could pull {mentioned} under some marker or extra"


def test_without_the_extra_the_sensors_agent_needs_only_the_core(tmp_path):
    installs = resolve(tmp_path, "./core", "./agents/sensors")
    core_only = names(resolve(tmp_path, "./core"))
    assert names(installs) == core_only | {"printmesh-sensors"}
