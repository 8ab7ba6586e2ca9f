"""The layer outlines of the file being printed, read on a thread of their own.

Outlines need every line of the file interpreted (``layers/outline.py``): about a second
per hundred thousand lines on a Pi 4. The bridge's worker publishes layers, events and
holds, so it never waits for that; it asks here and gets the result back through its queue.
Only the newest request counts (a file selected while another was read replaces it).

With a folder (the plugin's data folder), the scan runs in a child process at the lowest
priority (:mod:`.outline_process`: it never takes OctoPrint's GIL from the comm threads of a
print that starts at the same moment), and its result is kept on disk for that version of the
file: a file is read when it is uploaded, and its print, even after a restart, starts with the
outlines ready. The last few results are also kept in memory.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from octoprint_printmesh.gcode import Flavour
from octoprint_printmesh.layers.cache import Stamp, stamp_of
from octoprint_printmesh.outline_process import outlines_of
from printmesh_core import contract
from printmesh_core.models.layers import LayerOutlines, LayerTable

log = logging.getLogger("octoprint.plugins.printmesh.layers")
KEEP = 4  # files whose outlines are kept in memory
KEEP_ON_DISK = 32  # ... and on disk (the newest)
FORMAT = 1  # of the files on disk: part of their name, so another version's files are never read
CHILD_TIMEOUT = 900.0  # s: a 100 MB file on a busy Pi 4 at the lowest priority

Request = tuple[str, str, LayerTable, Flavour, bool]


class OutlineScanner:
    def __init__(self, deliver: Callable[[LayerOutlines], None], folder: Path | None = None) -> None:
        self.deliver = deliver
        self.folder = folder  # None: scanned on this thread, kept in memory only (tests, tools)
        self._child: subprocess.Popen[bytes] | None = None
        self._cond = threading.Condition()
        self._pending: Request | None = None
        self._stopped = False
        self._kept: OrderedDict[tuple[str, Stamp, Flavour], LayerOutlines] = OrderedDict()
        self._thread = threading.Thread(target=self._run, name="printmesh-outlines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
            child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def request(self, path: str, disk_path: str, table: LayerTable, flavour: Flavour, deliver: bool = True) -> None:
        """Read the outlines of ``path`` (unless kept); ``deliver``: hand them over (the print's file), else
        only keep them (a file selected: its print then starts with them ready)."""
        with self._cond:
            self._pending = (path, disk_path, table, flavour, deliver)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                request, self._pending = self._pending, None
            assert request is not None
            path, disk_path, table, flavour, deliver = request
            try:
                outlines = self.outlines(path, disk_path, table, flavour)
            except Exception:  # a file that cannot be read: the watch goes without its silhouette
                log.exception("%s: no layer outlines", path)
                continue
            if outlines is not None and deliver:
                self.deliver(outlines)

    def outlines(self, path: str, disk_path: str, table: LayerTable, flavour: Flavour) -> LayerOutlines | None:
        stamp = stamp_of(disk_path)
        if stamp is None:
            return None
        key = (disk_path, stamp, flavour)
        result = self._kept.get(key)
        if result is not None:
            self._kept.move_to_end(key)
        else:
            file = self._file(key)
            result = (_read_file(file) if file is not None else None) or self._scan(disk_path, flavour, table, file)
            if result is None:
                return None
            if stamp_of(disk_path) == stamp:  # not rewritten while it was read
                self._kept[key] = result
                while len(self._kept) > KEEP:
                    self._kept.popitem(last=False)
        return result if result.path == path else result.model_copy(update={"path": path})

    def _file(self, key: tuple[str, Stamp, Flavour]) -> Path | None:
        if self.folder is None:
            return None
        name = hashlib.sha1(repr((FORMAT, *key)).encode()).hexdigest()
        return self.folder / f"{name}.json"

    def _scan(self, disk_path: str, flavour: Flavour, table: LayerTable, file: Path | None) -> LayerOutlines | None:
        """In a child writing ``file``; without a folder, on this thread."""
        if file is None:
            result: LayerOutlines | None = outlines_of(disk_path, table, flavour)
        else:
            result = self._scan_in_child(disk_path, flavour, table, file)
        if result is not None:
            log.info("%s: outlines of %d layers", table.path, len(result.outlines))
        return result

    def _scan_in_child(self, disk_path: str, flavour: Flavour, table: LayerTable, file: Path) -> LayerOutlines | None:
        file.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "octoprint_printmesh.outline_process", disk_path, flavour, str(file)]
        with self._cond:
            if self._stopped:
                return None
            child = self._child = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        try:
            _, err = child.communicate(table.to_json(), timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            log.warning("%s: the outline scan took more than %.0f s: the watch goes without", disk_path, CHILD_TIMEOUT)
            return None
        finally:
            self._child = None
        if child.returncode != 0:
            if not self._stopped:
                tail = err.decode(errors="replace").strip().splitlines()[-3:]
                log.warning("%s: the outline scan failed (exit %s): %s", disk_path, child.returncode, " / ".join(tail))
            return None
        self._prune()
        return _read_file(file)

    def _prune(self) -> None:
        """Only the newest KEEP_ON_DISK files stay: files come and go, nothing else removes them."""
        assert self.folder is not None
        try:
            files = sorted(self.folder.glob("*.json"), key=lambda f: f.stat().st_mtime_ns)
            for old in files[:-KEEP_ON_DISK]:
                old.unlink(missing_ok=True)
        except OSError:
            log.debug("outline files not pruned", exc_info=True)


def _read_file(file: Path) -> LayerOutlines | None:
    """An earlier scan's outlines, read as another process's message; none yet, or damaged: scanned again."""
    try:
        return contract.PRINTER_OUTLINES.read(file.read_bytes())
    except (OSError, contract.Unreadable):
        return None
