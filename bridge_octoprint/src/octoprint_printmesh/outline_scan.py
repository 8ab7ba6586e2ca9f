"""The layer outlines of the file being printed, read on a thread of their own.

Outlines need every line of the file interpreted (``layers/outline.py``): about a second
per hundred thousand lines on a Pi 4. The bridge's worker publishes layers, events and
holds, so it never waits for that; it asks here and gets the result back through its queue.
Only the newest request counts (a file selected while another was read replaces it), and the
last few results are kept, so printing the same file again costs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from octoprint_printmesh.gcode import Flavour
from octoprint_printmesh.layers.cache import Stamp, stamp_of
from octoprint_printmesh.layers.outline import scan_outlines
from printmesh_core.models.layers import LayerOutlines, LayerTable

log = logging.getLogger("octoprint.plugins.printmesh.layers")
KEEP = 4  # files whose outlines are kept

Request = tuple[str, str, LayerTable, Flavour, bool]


class OutlineScanner:
    def __init__(self, deliver: Callable[[LayerOutlines], None]) -> None:
        self.deliver = deliver
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
        kept = self._kept.get(key)
        if kept is not None and kept.path == path:
            self._kept.move_to_end(key)
            return kept
        with open(disk_path, "rb") as f:
            layers = scan_outlines(f, table, flavour)
        result = LayerOutlines(path=path, file_size=stamp.size, outlines=layers)
        if stamp_of(disk_path) == stamp:  # not rewritten while it was read
            self._kept[key] = result
            while len(self._kept) > KEEP:
                self._kept.popitem(last=False)
        log.info("%s: outlines of %d layers", path, len(layers))
        return result
