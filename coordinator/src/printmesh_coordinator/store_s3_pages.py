"""The job page of an S3 store: built in a local mirror of the job's objects, then uploaded.

The page (``page.py``) reads a job folder and writes ``index.html`` and ``page/`` beside it;
OpenCV needs files to make thumbnails and to encode the timelapse. So before each build the
job's images, metadata and summary are brought into a temporary folder (only objects that
are new or whose ETag changed; what this coordinator uploaded itself is kept as it goes up,
so only other coordinators' files are downloaded), the page is built
there as it would be on disk, and every page file that changed is uploaded to the same keys
(``index.html`` last, so the page never links a thumbnail or video that is not there yet).
Its links are relative, so the page works when the bucket is served over HTTP. A few
recently built jobs are kept in the mirror; the rest, and the mirror itself at exit, are removed.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from printmesh_coordinator.job_folder import atomic_write
from printmesh_coordinator.page_html import Built
from printmesh_coordinator.store_s3 import S3Store

Render = Callable[[Path, bool, threading.Event | None], Built]  # page.build, or the page process's

log = logging.getLogger("printmesh.coordinator.page")

INDEX = "index.html"
ASSETS = "page"
JOBS_MIRRORED = 4
WANTED_SUFFIXES = (".jpg", ".jpeg", ".png", ".json")


class S3Pages:
    def __init__(self, store: S3Store, render: Render | None = None) -> None:
        self.store = store
        self.render = render or _render_here
        self.root = Path(tempfile.mkdtemp(prefix="printmesh-pages-"))
        self._etags: dict[str, str] = {}  # relative key -> ETag of the copy in the mirror
        self._uploaded: dict[str, str] = {}  # relative key -> sha256 of what we uploaded
        self._recent: list[Path] = []
        self.downloaded = 0  # objects the page had to download (not seeded by our own upload)
        self._lock = threading.Lock()  # the ETags: the page thread pulls, the upload thread seeds

    def folder(self, printer: str, job: str) -> Path:
        """The mirror folder of one job (the page worker's queue key)."""
        return self.root / printer / job

    def build(self, folder: Path, final: bool, stop: threading.Event | None = None) -> Built:
        relative = folder.relative_to(self.root).as_posix()
        self._remember(folder)
        self._pull(folder, relative)
        built = self.render(folder, final, stop)
        self._push(folder, relative)
        if final:
            log.info("job page in the bucket: %s (%d objects downloaded for pages so far)",
                     self.store.key(f"{relative}/{INDEX}"), self.downloaded)  # fmt: skip
        return built

    def seed(self, relative: str, data: bytes, etag: str) -> None:
        """Upload thread: keep a copy of an image or metadata just uploaded, so the page does not
        download it again (the listing's ETag of the same object then matches)."""
        name = relative.rsplit("/", 1)[-1]
        if not etag or relative.count("/") != 2 or not name.lower().endswith(WANTED_SUFFIXES):
            return
        atomic_write(self.root / relative, data)
        with self._lock:
            self._etags[relative] = etag

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _remember(self, folder: Path) -> None:
        if folder in self._recent:
            self._recent.remove(folder)
        self._recent.append(folder)
        while len(self._recent) > JOBS_MIRRORED:
            old = self._recent.pop(0)
            shutil.rmtree(old, ignore_errors=True)
            gone = old.relative_to(self.root).as_posix() + "/"
            with self._lock:
                for table in (self._etags, self._uploaded):
                    for key in [k for k in table if k.startswith(gone)]:
                        del table[key]

    def _pull(self, folder: Path, relative: str) -> None:
        """Download the job's images, metadata and summary that the mirror lacks or has older."""
        for name, etag in self.store.listing(relative).items():
            key = f"{relative}/{name}"
            if not name.lower().endswith(WANTED_SUFFIXES) or name.startswith("."):
                continue
            with self._lock:
                known = self._etags.get(key)
            if known == etag and (folder / name).is_file():
                continue
            atomic_write(folder / name, self.store.read(key))
            with self._lock:
                self._etags[key] = etag
            self.downloaded += 1

    def _push(self, folder: Path, relative: str) -> None:
        """Upload the page files that changed; videos the page dropped are removed from the bucket."""
        assets = folder / ASSETS
        files = (
            sorted(p for p in assets.rglob("*") if p.is_file() and not p.name.startswith("."))
            if assets.is_dir()
            else []
        )
        present = {f"{relative}/{p.relative_to(folder).as_posix()}" for p in files}
        for path in [*files, folder / INDEX]:
            if not path.is_file():
                continue
            key = f"{relative}/{path.relative_to(folder).as_posix()}"
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if self._uploaded.get(key) != digest:
                self.store.write(key, data)
                self._uploaded[key] = digest
        stale = [k for k in self._uploaded if k.startswith(f"{relative}/{ASSETS}/") and k not in present]
        for key in stale:
            self.store.delete(key)
            del self._uploaded[key]


def _render_here(folder: Path, final: bool, stop: threading.Event | None) -> Built:
    from printmesh_coordinator import page  # OpenCV: on the page worker's thread only

    return page.build(folder, final=final, stop=stop)
