"""printmesh coordinator --render, run as a process on a job folder."""

from __future__ import annotations

import subprocess
import sys

from job_folders import make_job

from printmesh_coordinator import page


def test_render_command_rebuilds_page_and_videos_from_the_folder(tmp_path):
    folder = make_job(tmp_path, [5, 10], points=2)
    cmd = [sys.executable, "-m", "printmesh_core.cli", "coordinator", "--render", str(folder)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert oct((folder / "index.html").stat().st_mode & 0o777) == "0o644"
    assert oct(next((folder / "page/video").glob("*.webm")).stat().st_mode & 0o777) == "0o644"
    assert done.stdout.strip() == str((folder / "index.html").resolve())
    assert page.page_state(folder) == "final" and len(list((folder / "page/video").glob("*.webm"))) == 2
    bad = subprocess.run([*cmd[:-1], str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a job folder" in bad.stderr
