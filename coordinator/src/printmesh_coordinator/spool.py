"""Captures kept on the coordinator's disk while the object store cannot be reached, uploaded in order later.

An S3 endpoint that is down (a network cut, a restarting server, a 5xx) would otherwise fail
every capture of every printer for as long as it lasts: the images exist, and are thrown away.
With the spool the upload thread keeps them instead, one file per object, and carries on
uploading them, oldest first, once the store answers again. Order is kept: once anything is
spooled, every later object waits behind it. So a layer's metadata still never reaches the
bucket before its images, and the job summary never arrives before the layers it counts.

A refusal (a wrong key, a missing bucket, access denied) is not spooled: it will not pass by
itself, and the capture fails with the store's message, as without a spool. The spool is
bounded (``spool_max_mb``); when it is full a capture fails, and nothing spooled is dropped.
It survives a restart: whatever is left is uploaded when the coordinator starts again.

Each entry is one file ``<sequence>.spool``: the object's relative path, a newline, then its
bytes, written to a temporary name and renamed, so an entry is whole or absent.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path

from printmesh_coordinator.store import check_relative, write_atomically

log = logging.getLogger("printmesh.coordinator.store")

SUFFIX = ".spool"


class SpoolFull(OSError):
    pass


class Spool:
    """Written and drained by the upload thread only; ``find`` may be called from any thread."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self._entries: deque[tuple[Path, str, int]] = deque()  # (file, relative path, bytes), oldest first
        self._lock = threading.Lock()  # the entries, against find()
        self.bytes = 0
        for path in sorted(folder.glob(f"*{SUFFIX}")):  # made at the first put; none yet: nothing left
            relative = self._relative_of(path)
            if relative is None:
                continue
            size = path.stat().st_size
            self._entries.append((path, relative, size))
            self.bytes += size
        numbered = [int(p.stem) for p in folder.glob(f"*{SUFFIX}") if p.stem.isdigit()]
        self._next = max(numbered) + 1 if numbered else 0  # after every file there, a stray one too
        if self._entries:
            log.warning("store: %d objects (%.1f MB) left spooled in %s from an earlier run; uploading them",
                        len(self._entries), self.bytes / 1e6, folder)  # fmt: skip

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, relative: str) -> bytes | None:
        """The bytes of ``relative`` if it waits here (the newest entry of that name)."""
        with self._lock:
            path = next((p for p, r, _ in reversed(self._entries) if r == relative), None)
        if path is None:
            return None
        try:
            return _data(path)
        except OSError:  # uploaded and removed meanwhile: the store has it
            return None

    def holds(self, folder: str) -> bool:
        """Anything spooled below ``folder`` (a job's ``printer/job``)."""
        prefix = folder.rstrip("/") + "/"
        return any(relative.startswith(prefix) for _, relative, _ in self._entries)

    def put(self, relative: str, data: bytes) -> None:
        check_relative(relative)
        body = relative.encode() + b"\n" + data
        if self.bytes + len(body) > self.max_bytes:
            raise SpoolFull(
                f"the spool {self.folder} is full ({self.bytes / 1e6:.0f} MB of coordinator.store.spool_max_mb): "
                f"{relative} not kept"
            )
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.folder / f"{self._next:012d}{SUFFIX}"
        write_atomically(path, body, 0o600, fsync=True, folder_made=True)  # kept because it matters
        self._next += 1
        with self._lock:
            self._entries.append((path, relative, len(body)))
        self.bytes += len(body)

    def oldest(self) -> tuple[str, bytes] | None:
        """The oldest entry's (relative path, bytes); an entry that cannot be read is set aside."""
        while self._entries:
            path, relative, _ = self._entries[0]
            try:
                data = _data(path)
            except OSError as exc:
                log.error("store: spooled %s unreadable, set aside: %s", relative, exc)
                self._drop(keep=True)
                continue
            return relative, data
        return None

    def done(self) -> str:
        """The oldest entry was uploaded: forget it; its relative path."""
        relative = self._entries[0][1]
        self._drop(keep=False)
        return relative

    def _drop(self, keep: bool) -> None:
        with self._lock:
            path, _, size = self._entries.popleft()
        self.bytes -= size
        try:
            if keep:
                path.rename(path.with_suffix(".unreadable"))
            else:
                os.unlink(path)
        except OSError as exc:
            log.error("store: cannot remove spooled %s: %s", path, exc)

    @staticmethod
    def _relative_of(path: Path) -> str | None:
        try:
            with path.open("rb") as f:
                first = f.readline(4097)
            relative = first.rstrip(b"\n").decode()
            check_relative(relative)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.error("store: %s is not a spool entry, left alone: %s", path, exc)
            return None
        return relative


def _data(path: Path) -> bytes:
    """An entry's object bytes: what follows its first line (the relative path)."""
    _, newline, data = path.read_bytes().partition(b"\n")
    if not newline:
        raise OSError(f"{path.name}: no path line (not a whole entry)")
    return data
