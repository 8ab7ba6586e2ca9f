"""The ``octoprint.filemanager.preprocessor`` side of the layer marks (:mod:`.layers.upload_marks`).

OctoPrint calls the preprocessor in ``FileManager.add_file``, on the thread that adds the
file (an upload's request, the watched folder's), never on the comm or event thread; the
wrapper returned here does its work when OctoPrint saves the file. A file that cannot be
marked (no layers found, anything raised) is stored exactly as it came: the marks make a
print cheaper to follow, never possible.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

from octoprint import UMASK
from octoprint.filemanager.util import AbstractFileWrapper, DiskFileWrapper

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour
from octoprint_printmesh.layers.scanner import scan_seekable
from octoprint_printmesh.layers.upload_marks import write_marked

log = logging.getLogger("octoprint.plugins.printmesh.layers")
SPOOL = 8 << 20  # a stream wrapper's content is kept in memory up to this, then on disk


class MarkedUpload(AbstractFileWrapper):  # type: ignore[misc]
    def __init__(self, inner: Any, flavour: Flavour = DEFAULT_FLAVOUR) -> None:
        super().__init__(inner.filename)
        self.inner = inner
        self.flavour = flavour

    @contextmanager
    def _source(self) -> Iterator[BinaryIO]:
        """The upload's bytes as a seekable binary file."""
        if isinstance(self.inner, DiskFileWrapper):
            with open(self.inner.path, "rb") as f:
                yield f
            return
        with tempfile.SpooledTemporaryFile(SPOOL) as spool, self.inner.stream() as stream:
            shutil.copyfileobj(stream, spool)
            spool.seek(0)
            yield spool  # type: ignore[misc]

    def _write(self, source: BinaryIO, dest: BinaryIO) -> None:
        start = time.monotonic()
        try:
            table = scan_seekable(source, self.filename, flavour=self.flavour).table
            if table.layers:
                source.seek(0)
                stats = write_marked(source, dest, table)
                log.info("%s: %d layer marks and %d tracked lines written in %.2f s", self.filename,
                         stats.layers, stats.tracked, time.monotonic() - start)  # fmt: skip
                return
        except Exception:
            log.exception("%s: not marked, stored as uploaded", self.filename)
        dest.seek(0)
        dest.truncate()
        source.seek(0)
        shutil.copyfileobj(source, dest)

    def save(self, path: str, permissions: int | None = None) -> None:
        folder = os.path.dirname(path)  # the temporary name is short: the file's own may be 250 bytes
        temp = tempfile.NamedTemporaryFile("wb", dir=folder or None, prefix=".printmesh-upload-", delete=False)  # noqa: SIM115
        with self._source() as source, temp as dest:
            try:
                self._write(source, dest)  # type: ignore[arg-type]
            except BaseException:
                dest.close()
                with suppress(OSError):
                    os.unlink(dest.name)
                raise
        os.replace(dest.name, path)
        os.chmod(path, permissions if permissions is not None else self.DEFAULT_PERMISSIONS & ~UMASK)
        if isinstance(self.inner, DiskFileWrapper) and self.inner.move:
            with suppress(OSError):
                os.unlink(self.inner.path)  # it would have been moved

    def stream(self) -> BinaryIO:
        out: BinaryIO = tempfile.SpooledTemporaryFile(SPOOL)  # type: ignore[assignment]  # noqa: SIM115 (closed by the caller)
        with self._source() as source:
            self._write(source, out)
        out.seek(0)
        return out
