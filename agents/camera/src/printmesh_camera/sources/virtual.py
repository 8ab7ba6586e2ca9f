"""The virtual camera: renders the part a printer has printed so far, as a camera would see it.

It follows the printer through its bridge's topics (:mod:`printmesh_camera.follow`): the
job's file and the layer reached. The file is found in ``files`` (OctoPrint's uploads
folder; a name that resolves outside it is refused) or downloaded from OctoPrint's REST
API, then parsed once in a background thread; frames are rendered on read.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from printmesh_camera.follow import PrinterFollower, PrinterView
from printmesh_camera.sources.base import Frame, Pacer, SizeHint, Source, SourceError
from printmesh_camera.sources.realism import Realism
from printmesh_camera.sources.render import VirtualRenderer
from printmesh_camera.sources.toolpath import Toolpath, parse_file, parse_lines
from printmesh_camera.virtual_config import VirtualSourceConfig

log = logging.getLogger("printmesh.camera")

DEFAULT_SIZE = (1280, 720)
LOAD_WAIT = 20.0  # seconds a read waits for the job's file to be parsed
NOTHING = object()  # nothing loading (None is a valid file: no job, an empty bed)


def job_file(folder: Path, file_path: str) -> Path:
    """``file_path`` (OctoPrint storage path) inside ``folder``; SourceError if it escapes it."""
    root = folder.resolve()
    candidate = (root / file_path).resolve()
    if not file_path or Path(file_path).is_absolute() or not candidate.is_relative_to(root) or candidate == root:
        raise SourceError(f"job file {file_path!r} is outside {folder}: refused")
    return candidate


class VirtualSource(Source):
    def __init__(self, config: VirtualSourceConfig, hint: SizeHint, follower: PrinterFollower | None = None) -> None:
        self.config = config
        width = hint.width or (round(hint.height * 16 / 9) if hint.height else DEFAULT_SIZE[0])
        height = hint.height or (round(width * 9 / 16) if hint.width else DEFAULT_SIZE[1])
        self.size = (width, height)
        self.follower = follower or PrinterFollower(config.printer)
        self.description = f"virtual {config.mount} camera of printer {config.printer}"
        self._pacer = Pacer(config.fps)
        self._counter = -1
        self._opened = time.monotonic()
        self._lock = threading.Lock()
        self._loaded: tuple[str | None, VirtualRenderer] | None = None
        self._loading: object = NOTHING
        self._error: str | None = None
        self._done = threading.Event()
        self._generation = 0
        self._shared_realism: Realism | None = None

    def open(self) -> None:
        # a missing files folder is not an error yet: OctoPrint creates it when it starts, maybe after us
        self._pacer = Pacer(self.config.fps)
        self._counter = -1
        self._opened = time.monotonic()
        self._ensure(self.follower.view())

    # ------------------------------------------------------------ loading
    def fetch(self, file_path: str) -> Toolpath:
        """The toolpath of the job's file: from ``files`` when it is there, else OctoPrint's API."""
        cfg = self.config
        if cfg.files is not None:
            path = job_file(cfg.files, file_path)
            if path.is_file() or cfg.octoprint is None:
                if not path.is_file():
                    where = "" if cfg.files.is_dir() else " (the folder does not exist)"
                    raise SourceError(f"job file {file_path!r} not found in {cfg.files}{where}")
                return parse_file(path)
        assert cfg.octoprint is not None
        url = f"{cfg.octoprint.url}/downloads/files/local/{quote(file_path)}"
        request = urllib.request.Request(url, headers={"X-Api-Key": cfg.octoprint.api_key.get_secret_value()})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode("utf-8", errors="replace")
        except OSError as exc:
            raise SourceError(f"cannot download {file_path!r} from OctoPrint: {exc}") from None
        return parse_lines(text.splitlines())

    def _load(self, file_path: str | None, generation: int) -> None:
        loaded: tuple[str | None, VirtualRenderer] | None = None
        error: str | None = None
        try:
            toolpath = self.fetch(file_path) if file_path else Toolpath([])
            loaded = (file_path, VirtualRenderer(self.config, toolpath, self.size, self._realism()))
            if file_path:
                log.info("virtual camera: %s has %d layers", file_path, toolpath.count)
        except SourceError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"cannot read job file {file_path!r}: {exc}"
        with self._lock:
            if generation != self._generation:
                return  # a later job's file is being loaded: only its result counts
            if loaded is not None:
                self._loaded = loaded
            self._error, self._loading = error, NOTHING
            self._done.set()

    def _realism(self) -> Realism:
        """The noise bank depends on size and seed only: made once, shared by every file's renderer."""
        with self._lock:
            if self._shared_realism is None:
                self._shared_realism = Realism(self.config.realism, self.config.seed, self.size)
            return self._shared_realism

    def _ensure(self, view: PrinterView) -> None:
        """Start parsing the job's file in the background when it changed."""
        wanted = view.file_path if view.file_origin in (None, "local") else None
        with self._lock:
            current = self._loaded[0] if self._loaded else NOTHING
            if wanted == self._loading or (wanted == current and self._loading is NOTHING):
                return
            self._generation += 1
            self._loading, self._error = wanted, None
            self._done.clear()
            generation = self._generation
        threading.Thread(target=self._load, args=(wanted, generation), name="virtual-camera-load", daemon=True).start()

    def renderer(self, view: PrinterView) -> VirtualRenderer:
        """The renderer of the job's file, waiting for its parse if it is under way."""
        self._ensure(view)
        if not self._done.wait(LOAD_WAIT):
            raise SourceError(f"job file {view.file_path!r} is still being read")
        with self._lock:
            if self._error is not None:
                raise SourceError(self._error)
            assert self._loaded is not None
            return self._loaded[1]

    # ------------------------------------------------------------ frames
    def check(self) -> None:
        with self._lock:
            error = self._error
        if error is not None:
            raise SourceError(error)

    def read(self, after: float, label: str | None = None) -> Frame:
        view = self.follower.view()
        renderer = self.renderer(view)
        counter, due = self._pacer.slot(after, self._counter)
        Pacer.wait_until(due)
        self._counter = counter
        image = renderer.frame(view.layers, view.head, counter, time.monotonic() - self._opened)
        return Frame(image, time.time(), counter)

    def close(self) -> None:
        with self._lock:
            self._loaded = None
            self._loading = NOTHING
            self._generation += 1  # a load still running is dropped
