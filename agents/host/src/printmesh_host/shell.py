"""Running the shell commands from the local config: bounded in time and in output.

A command runs in its own process group, so a timeout kills the whole tree (``sh -c``
children included), not only the direct child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

from printmesh_core.models.host import ShellResult
from printmesh_host.config import ShellCommand


def _cut(data: bytes, limit: int) -> tuple[str, bool]:
    cut = len(data) > limit
    return data[:limit].decode("utf-8", errors="replace"), cut


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_command(cmd: ShellCommand) -> ShellResult:
    args: list[str] | str = cmd.command if cmd.shell and cmd.command is not None else list(cmd.argv or [])
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            args,
            shell=cmd.shell,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return ShellResult(
            name=cmd.name, exit_code=None, stdout="", stderr="", truncated=False,
            duration=round(time.monotonic() - started, 3), timed_out=False,
            error=f"could not start: {exc.strerror or exc}",
        )  # fmt: skip
    timed_out = False
    try:
        out, err = proc.communicate(timeout=cmd.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipe
            out, err = b"", b""
    duration = round(time.monotonic() - started, 3)
    stdout, cut_out = _cut(out, cmd.max_output)
    stderr, cut_err = _cut(err, cmd.max_output)
    return ShellResult(
        name=cmd.name,
        exit_code=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr,
        truncated=cut_out or cut_err,
        duration=duration,
        timed_out=timed_out,
        error=f"timed out after {cmd.timeout:g}s and was killed" if timed_out else None,
    )
