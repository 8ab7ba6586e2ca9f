"""Scanned layer tables kept by file, so a print finds its table ready at its first line.

The plugin scans a file when it is added or selected (on the bridge's worker thread), long
before it is printed in practice; the comm thread then looks the table up when the print's
first line goes out, with no I/O: a dict lookup by the file's path on disk.

An entry is valid for one version of the file: its size and modification time (``Stamp``,
taken by the worker with ``os.stat`` when it scanned) and the G-code flavour it was read
with (the flavour changes how a file without markers is read). The worker checks the stamp
before reusing an entry; the comm thread cannot stat, so entries are dropped as soon as
OctoPrint is about to write a file (the upload preprocessor hook runs before the new bytes
land) or removes or moves one. The cache is small and bounded (least recently used out):
a table is a few hundred bytes per layer, and only files about to be printed matter.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import NamedTuple

from octoprint_printmesh.gcode import Flavour
from printmesh_core.models.layers import LayerTable

LIMIT = 16  # files; a farm node prints one at a time, a user selects a few in a row


class Stamp(NamedTuple):
    size: int
    mtime_ns: int


def stamp_of(disk_path: str) -> Stamp | None:
    """The file's size and modification time, or None when it cannot be read (worker thread)."""
    try:
        st = os.stat(disk_path)
    except OSError:
        return None
    return Stamp(st.st_size, st.st_mtime_ns)


class TableCache:
    """Disk path -> (stamp, flavour, table); thread-safe, every operation a few dict steps."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, tuple[Stamp, Flavour, LayerTable]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, disk_path: str | None, flavour: Flavour, stamp: Stamp | None = None) -> LayerTable | None:
        """The table of this file read with ``flavour``; with ``stamp``, only for that version."""
        if disk_path is None:
            return None
        with self._lock:
            entry = self._entries.get(disk_path)
            if entry is None or entry[1] != flavour or (stamp is not None and entry[0] != stamp):
                return None
            self._entries.move_to_end(disk_path)
            return entry[2]

    def put(self, disk_path: str, stamp: Stamp, flavour: Flavour, table: LayerTable) -> None:
        with self._lock:
            self._entries[disk_path] = (stamp, flavour, table)
            self._entries.move_to_end(disk_path)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def forget(self, path: str) -> None:
        """Drop the tables of ``path`` (OctoPrint's path in storage) and of anything under it."""
        folder = path.rstrip("/") + "/"
        with self._lock:
            for key, (_, _, table) in list(self._entries.items()):
                if table.path == path or (table.path or "").startswith(folder):
                    del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
