"""The S3 backend (``store.type: s3``): the same keys as below ``captures_dir``, in a bucket.

``<prefix>/<printer>/<job>/<file>``, one object per file, each written whole by a single PUT
(an object appears complete or not at all, as a renamed file does). The MinIO client (any
S3-compatible server: AWS, MinIO, SeaweedFS, Ceph, Garage) is imported on first use. Requests
are bounded: ``timeout`` to connect and to read, and ``retries`` with backoff only where a
retry can help (the network, a 5xx, a throttle); a refusal (wrong key, no such bucket, denied)
fails at once. Every failure raises ``StoreError`` with a message that names the cause and the
setting to check; the first failure of each cause is logged, later ones are only counted.
An endpoint that cannot be reached at all is not asked again for a while (``UNREACHABLE``,
doubling while it stays away): each request would otherwise wait ``timeout`` times
``retries + 1`` on the one upload thread, the queue behind it (every image of every printer,
held in memory) would grow for as long as the outage lasts, and each capture would fail
only at the machine's store deadline; so they fail at once, saying so, until a request
gets through again.
The caller (``storage.py``) runs all of this on its own thread, never on the decision loop.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from printmesh_coordinator.store import METADATA_GLOB, SUMMARY_NAME, assemble, check_relative
from printmesh_coordinator.store_config import StoreConfig
from printmesh_core.models.coordinator import JobSummary, LayerCapture
from printmesh_core.models.printer import HoldPlan

log = logging.getLogger("printmesh.coordinator.store")

T = TypeVar("T")
SINGLE_PUT_MAX = 5 * 1024**3  # S3's largest single PUT: as the part size, no upload is ever split
RETRY_CODES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed"})
BACKOFF = 0.25  # s before the first retry, doubled for each next
HINTS = {
    "InvalidAccessKeyId": "check coordinator.store.access_key",
    "SignatureDoesNotMatch": "check coordinator.store.secret_key",
    "AccessDenied": "the key may not write this bucket and prefix",
    "NoSuchBucket": "check coordinator.store.bucket (it must exist)",
}
UNREACHABLE = (5.0, 60.0)  # s requests fail at once after the endpoint could not be reached: first, longest
CACHED_MAX = 20_000  # parsed metadata remembered by (key, etag)
_META_PREFIX, _META_SUFFIX = METADATA_GLOB.split("*", 1)[0], ".json"


class StoreError(OSError):
    """An object the store could not write or read; its message says why and what to check.

    ``transient``: the store could not be reached or failed on its side (network, 5xx, throttled),
    so the same request may succeed later; a refusal (wrong key, no bucket, denied) is not."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def object_key(prefix: str, relative: str) -> str:
    """``<prefix>/<relative>``, every part of ``relative`` a plain name (as below captures_dir)."""
    check_relative(relative, "the bucket prefix")
    return f"{prefix}/{relative}" if prefix else relative


def content_type(name: str) -> str:
    kind = mimetypes.guess_type(name)[0]
    if name.endswith(".webm"):
        return "video/webm"
    return kind or "application/octet-stream"


def is_metadata(name: str) -> bool:
    return name.startswith(_META_PREFIX) and "_metadata_" in name and name.endswith(_META_SUFFIX)


class S3Store:
    remote = True  # network I/O: the caller runs it on its own thread

    def __init__(self, config: StoreConfig) -> None:
        assert config.bucket is not None and config.endpoint is not None
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self._where = f"s3://{self.bucket}/{self.prefix}" + ("/" if self.prefix else "") + f" at {config.endpoint}"
        self._client: Any = None
        self._lock = threading.Lock()
        self._causes: set[str] = set()
        self._parsed: dict[tuple[str, str], LayerCapture] = {}
        self.failures = 0  # requests that failed for good
        self.written = 0
        self.clock: Callable[[], float] = time.monotonic
        self._down: tuple[float, float, str] | None = None  # the endpoint unreachable: until, for how long, why

    @property
    def where(self) -> str:
        return self._where

    # ---------------------------------------------------------------- requests
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import urllib3
                from minio import Minio

                url = self.config.endpoint or ""
                scheme, host = url.split("://", 1)
                t = self.config.timeout
                http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=t, read=t), retries=False, maxsize=4)
                access, secret = self.config.access_key, self.config.secret_key
                assert access is not None and secret is not None
                self._client = Minio(host, access.get_secret_value(), secret.get_secret_value(),
                                     secure=scheme == "https", region=self.config.region or "us-east-1",
                                     http_client=http)  # fmt: skip
            return self._client

    def _request(self, what: str, key: str, call: Callable[[Any], T]) -> T:
        """``call(client)`` with bounded retries; a failure for good raises ``StoreError``."""
        from minio.error import S3Error

        down = self._down
        if down is not None and self.clock() < down[0]:
            again = down[0] - self.clock()
            message = f"{self._where}: {what} {key} not tried: unreachable ({down[2]}); trying again in {again:.0f} s"
            self._failed("Unreachable", message)
            raise StoreError(message, transient=True)
        delay = BACKOFF
        for attempt in range(self.config.retries + 1):
            network = False
            try:
                result = call(self.client())
            except S3Error as exc:
                code, cause = exc.code or "error", f"{exc.code}: {exc.message}"
                retry = code in RETRY_CODES or getattr(exc.response, "status", 0) >= 500
                hint = HINTS.get(code)
            except Exception as exc:  # urllib3 and socket errors, a malformed answer
                code, cause, retry, hint = type(exc).__name__, _short(exc), True, "is the endpoint reachable?"
                network = True
            else:
                if self._down is not None:
                    log.warning("%s: reachable again", self._where)
                    self._down = None
                return result
            if not retry or attempt == self.config.retries:
                break
            time.sleep(delay)
            delay *= 2
        tries = f" after {attempt + 1} tries" if attempt else ""
        message = f"{self._where}: {what} {key} failed{tries}: {cause}" + (f" ({hint})" if hint else "")
        if network:
            span = UNREACHABLE[0] if down is None else min(down[1] * 2, UNREACHABLE[1])
            self._down = (self.clock() + span, span, cause)
            message += f"; requests fail at once for {span:.0f} s"
        self._failed(code, message)
        raise StoreError(message, transient=retry)

    def _failed(self, code: str, message: str) -> None:
        with self._lock:
            self.failures += 1
            first = code not in self._causes
            self._causes.add(code)
        if first:
            log.error("%s", message)
        else:
            log.debug("%s", message)

    # ---------------------------------------------------------------- the store
    def key(self, relative: str) -> str:
        return object_key(self.prefix, relative)

    def write(self, relative: str, data: bytes) -> str:
        """Put ``data`` at ``relative``'s key, whole (one PUT); returns the object's ETag."""
        key = self.key(relative)
        kind = content_type(key)

        def put(c: Any) -> str:
            result = c.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=kind,
                                  part_size=SINGLE_PUT_MAX)  # fmt: skip
            return str(getattr(result, "etag", "") or "")

        etag = self._request("upload of", key, put)
        with self._lock:
            self.written += 1
        return etag

    def write_json(self, relative: str, body: str) -> str:
        return self.write(relative, (body + "\n").encode())

    def read(self, relative: str) -> bytes:
        key = self.key(relative)

        def get(c: Any) -> bytes:
            response = c.get_object(self.bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return self._request("download of", key, get)

    def listing(self, folder: str) -> dict[str, str]:
        """The objects directly in ``folder`` (as a folder below captures_dir): name → ETag."""
        base = self.key(folder) + "/"

        def names(c: Any) -> dict[str, str]:
            objects = c.list_objects(self.bucket, prefix=base, recursive=False)
            return {o.object_name[len(base) :]: o.etag or "" for o in objects if not o.is_dir}

        return self._request("listing of", base, names)

    def delete(self, relative: str) -> None:
        key = self.key(relative)
        self._request("removal of", key, lambda c: c.remove_object(self.bucket, key))

    def summary(
        self,
        printer: str,
        job: str,
        outcome: str,
        gcode_file: str | None,
        print_start_time: float | None,
        now: float,
        published: list[LayerCapture] | None = None,
        plan: HoldPlan | None = None,
        total_layers: int | None = None,
    ) -> JobSummary | None:
        """As the local store's, from the job's objects (so it counts every coordinator's layers);
        metadata already parsed is not downloaded again while its ETag is the same. When the
        bucket cannot be listed (a wrong key), the summary of the layers this coordinator
        published, so the job still ends with one."""
        folder = f"{printer}/{job}"
        try:
            files = self.listing(folder)
        except StoreError:
            if not published:
                raise
            files = {}  # the bucket cannot be read (logged): the summary of what this coordinator published
        if not files and not published:
            return None
        layers = self._layers(folder, files)
        previous: str | None = None
        if outcome == "unknown" and SUMMARY_NAME in files:
            try:
                previous = JobSummary.model_validate_json(self.read(f"{folder}/{SUMMARY_NAME}")).outcome
            except (OSError, ValidationError):
                previous = None
        return assemble(printer, job, outcome, previous, gcode_file, print_start_time, now, layers, list(files),
                        published, plan, total_layers)  # fmt: skip

    def layers(self, printer: str, job: str) -> list[LayerCapture]:
        """Every readable layer metadata object of the job, in name order."""
        folder = f"{printer}/{job}"
        return self._layers(folder, self.listing(folder))

    def _layers(self, folder: str, files: dict[str, str]) -> list[LayerCapture]:
        found = (self._metadata(f"{folder}/{name}", etag) for name, etag in sorted(files.items()) if is_metadata(name))
        return [md for md in found if md is not None]

    def _metadata(self, relative: str, etag: str) -> LayerCapture | None:
        cached = self._parsed.get((relative, etag))
        if cached is not None and etag:
            return cached
        try:
            md = LayerCapture.model_validate_json(self.read(relative))
        except (OSError, ValidationError) as exc:
            log.warning("skipping unreadable metadata %s: %s", relative, exc)
            return None
        if len(self._parsed) >= CACHED_MAX:
            self._parsed.clear()
        self._parsed[(relative, etag)] = md
        return md


def _short(exc: BaseException) -> str:
    """A urllib3 error's innermost reason, not its whole chain."""
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    return f"{type(exc).__name__}: {text[:300]}"
