"""A helper process for the coordinator's heavy Python work (the print watch, the job pages).

Threads were not enough: the watch's numpy and the page builder's Python took the GIL in
turns with the loop that decides holds, and at 200 printers they were what set the p99 of
a decision (9.09 ms with both off against 62.10 ms with both on, side by side in one run).
A process has its own interpreter, so the loop only pays for a pickle and a socket write.

``Child`` runs ``python -m printmesh_coordinator.child`` with one end of a socket pair. The
child imports a handler module (``Handler(*args)``, then ``handle(request) -> reply`` per
request, one at a time) and exits when the coordinator closes its
end, dies included, so no helper outlives its coordinator. A child that dies or hangs is
replaced at the next call (``generation`` counts them: what it remembered is gone), and the
call in flight raises ``ChildFailed``; so does a handler's exception, with its message.

A separate interpreter still shares the CPU, and on a 2-core machine the helpers' bursts
(a layer's 9 images, a page's thumbnails) took a core the loop, the broker or the printers
wanted. So a helper runs under ``SCHED_IDLE`` (Linux; else only ``nice``) with OpenCV on one
thread: it gets the CPU nobody else wants. The cost, on a machine that is busy all the
time: the watch falls behind and drops its oldest waiting layer (counted and logged), and
pages update late. A delayed verdict costs seconds; a delayed hold costs the print.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("printmesh.coordinator.child")

POLL = 0.1  # s between checks of the child's life and of ``stop`` while a call waits


class ChildFailed(RuntimeError):
    """The call did not complete: the handler raised, or the process died or hung."""


class Child:
    def __init__(self, handler: str, args: tuple[Any, ...] = (), name: str = "helper", nice: int = 5,
                 timeout: float | None = 60.0, idle: bool = True) -> None:  # fmt: skip
        self.handler, self.args, self.name, self.nice, self.timeout = handler, args, name, nice, timeout
        self.policy = "idle" if idle else "normal"  # SCHED_IDLE (the default) or plain ``nice``
        self.generation = 0  # processes started so far; a new one remembers nothing of the last
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()  # one call at a time; ``close`` from another thread
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        """Start the process now (it imports the handler's modules while the caller goes on)."""
        with self._lock:
            self._ensure()

    def call(self, request: Any, stop: threading.Event | None = None, stop_signal: int = signal.SIGUSR1) -> Any:
        """Send ``request``, wait for the reply; ``stop`` set meanwhile sends the child ``stop_signal``."""
        with self._lock:
            conn, proc = self._ensure()
            try:
                conn.send(request)
            except OSError as exc:
                self._lost(f"cannot be reached ({exc})")
            started = time.monotonic()
            signalled = False
            while True:
                try:
                    if conn.poll(POLL):
                        status, reply = conn.recv()
                        break
                except (OSError, EOFError) as exc:
                    self._lost(f"went away ({exc or 'closed'})")
                if proc.poll() is not None:
                    self._lost(f"exited with {proc.returncode}")
                if stop is not None and stop.is_set() and not signalled:
                    signalled = True
                    proc.send_signal(stop_signal)
                if self.timeout is not None and time.monotonic() - started > self.timeout:
                    self._lost(f"did not answer within {self.timeout:.0f} s")
        if status != "ok":
            raise ChildFailed(str(reply))
        return reply

    def close(self, grace: float = 2.0) -> None:
        """Ask the process to exit (its end of the socket closes), kill it after ``grace`` seconds."""
        self._closed = True
        conn, proc = self._conn, self._proc
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()
        if proc is not None:
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(grace)

    def _ensure(self) -> tuple[Connection, subprocess.Popen[bytes]]:
        if self._closed:
            raise ChildFailed(f"{self.name} closed")
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn, self._proc
        self._stop()
        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        try:
            argv = [sys.executable, "-m", "printmesh_coordinator.child", str(fd), str(self.nice), self.policy]
            proc = subprocess.Popen(argv, pass_fds=(fd,), stdin=subprocess.DEVNULL)
        except OSError as exc:  # no memory, no file descriptors left
            ours.close()
            raise ChildFailed(f"{self.name} process cannot be started: {exc}") from exc
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        conn.send((list(sys.path), logging.getLogger("printmesh").getEffectiveLevel(), self.handler, self.args))
        self._proc, self._conn = proc, conn
        self.generation += 1
        if self.generation > 1:
            log.warning("%s process started again (pid %d)", self.name, proc.pid)
        return conn, proc

    def _lost(self, why: str) -> None:
        self._stop()
        raise ChildFailed(f"{self.name} process {why}")

    def _stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)
        self._conn, self._proc = None, None


def serve(fd: int, nice: int, idle: bool) -> None:
    """The child: handle requests until the coordinator closes its end."""
    conn = Connection(fd)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # a stop before the handler can take it (``call``)
    with contextlib.suppress(OSError):
        os.nice(nice)
    if idle:
        with contextlib.suppress(AttributeError, OSError):  # Linux: CPU only when no other task wants it
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    path, level, module, args = conn.recv()
    sys.path[:] = [p for p in path if p]  # the coordinator's (tests add theirs)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with contextlib.suppress(ImportError):  # one core at most: the other is the loop's (2-core machines)
            importlib.import_module("cv2").setNumThreads(1)
        handler = importlib.import_module(module).Handler(*args)
    except Exception as exc:  # every request then says why, and the coordinator decides what to do
        handler, broken = None, f"{type(exc).__name__}: {exc}"
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if handler is None:
                raise ChildFailed(broken)
            reply: tuple[str, Any] = ("ok", handler.handle(request))
        except ChildFailed as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # the coordinator logs it; the child goes on with the next request
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "idle")
