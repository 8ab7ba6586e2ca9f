"""Importing the sensors agent in a fresh interpreter loads no vendor library."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_agent_imports_no_vendor_library():
    code = (
        "import sys, printmesh_sensors.component;"
        "bad = {'board', 'adafruit_dht', 'digitalio', 'cv2', 'numpy'} & set(sys.modules);"
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr or proc.stdout
