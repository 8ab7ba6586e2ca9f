"""printmesh <component> --check, run as a process, masks a password it read from a file."""

from __future__ import annotations

import os
import subprocess
import sys


def test_check_masks_a_password_read_from_a_file(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("hunter2-in-a-file\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRINTMESH_")}
    env.update({"PRINTMESH_MQTT__USERNAME": "u", "PRINTMESH_MQTT__PASSWORD_FILE": str(pw)})
    r = subprocess.run([sys.executable, "-m", "printmesh_core.cli", "host", "--check"], capture_output=True,
                       text=True, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in r.stdout + r.stderr and "password: '**********'" in r.stdout
