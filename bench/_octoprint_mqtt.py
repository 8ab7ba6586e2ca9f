"""OctoPrint-MQTT, the bridge printmesh is compared with, in a virtualenv of its own.

PyPI has no OctoPrint-MQTT (OctoPrint's plugin repository installs it from GitHub), so the
bench installs a pinned commit of its public source, with the same OctoPrint version as
``.venv-octoprint``, into a cached venv outside the repository:
``$PRINTMESH_BENCH_CACHE`` (default ``~/.cache/printmesh-bench``)
``/octoprint-mqtt-<commit>-octoprint-<version>/``. Made once (about a minute), reused after.

The source is the GitHub archive of the pinned commit; where GitHub is out of reach,
``--octoprint-mqtt-src`` names a local git clone (the commit is archived from it with
``git archive``, so it is the same bytes) or an archive file of that commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from octoprint_harness import octoprint_venv

# tag 0.8.16 of https://github.com/OctoPrint/OctoPrint-MQTT (setup.py: plugin_version = "0.8.16")
COMMIT = "7c15ca5e34558a86c9dbab8b884744400c70ea90"
VERSION = "0.8.16"
URL = f"https://github.com/OctoPrint/OctoPrint-MQTT/archive/{COMMIT}.zip"
REQUIRES = ["paho-mqtt<2", "six"]  # its setup.py's plugin_requires besides OctoPrint
CACHE = Path(os.environ.get("PRINTMESH_BENCH_CACHE", Path.home() / ".cache" / "printmesh-bench"))


def _run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} ...: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return done.stdout


def octoprint_version(venv: Path) -> str:
    return _run(str(venv / "bin" / "python"), "-c", "import octoprint; print(octoprint.__version__)").strip()


def _archive(source: str | None, work: Path) -> Path:
    """The pinned commit's source as a zip: from a local clone, a local archive, or GitHub."""
    out = work / f"OctoPrint-MQTT-{COMMIT}.zip"
    clone = source is not None and (Path(source, ".git").exists() or Path(source, "HEAD").exists())
    if source is not None and clone:
        git = ["git", "-C", source]
        _run(*git, "cat-file", "-e", f"{COMMIT}^{{commit}}")  # the pinned commit, nothing else
        _run(*git, "archive", "--format=zip", f"--prefix=OctoPrint-MQTT-{COMMIT}/", "-o", str(out), COMMIT)
    elif source is not None:
        shutil.copy(source, out)
    else:
        try:
            with urllib.request.urlopen(URL, timeout=60) as response, out.open("wb") as fh:
                shutil.copyfileobj(response, fh)
        except OSError as exc:
            raise SystemExit(
                f"cannot download {URL} ({exc}): pass --octoprint-mqtt-src with a clone of"
                f" https://github.com/OctoPrint/OctoPrint-MQTT that has commit {COMMIT}"
            ) from exc
    return out


def octoprint_mqtt_venv(source: str | None = None) -> Path:
    """The venv's path, made if missing: OctoPrint as in .venv-octoprint, OctoPrint-MQTT at COMMIT."""
    base = octoprint_venv()
    octo = octoprint_version(base)
    venv = CACHE / f"octoprint-mqtt-{COMMIT[:10]}-octoprint-{octo}"
    done = venv / ".complete"
    if done.exists():
        return venv
    print(f"# installing OctoPrint {octo} and OctoPrint-MQTT {VERSION} ({COMMIT[:10]}) into {venv}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = _run(str(base / "bin" / "python"), "-c", "import sys; print(sys._base_executable)").strip()
    _run(python, "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run(*pip, f"OctoPrint=={octo}", *REQUIRES)
    with tempfile.TemporaryDirectory(prefix="printmesh-octoprint-mqtt-") as work:
        archive = _archive(source, Path(work))
        _run(*pip, "--no-build-isolation", "--no-deps", str(archive))  # setup.py imports octoprint_setuptools
    _run(str(venv / "bin" / "python"), "-c", "import octoprint.plugin, octoprint.printer, octoprint_mqtt")
    done.write_text(f"{COMMIT}\n")
    return venv


def settings(host: str, port: int) -> dict[str, object]:
    """config.yaml ``plugins.mqtt``: the bench's broker; everything else as shipped (all events
    published, QoS 0, retained where the plugin retains)."""
    return {"plugins": {"mqtt": {"broker": {"url": host, "port": port}}}}
