"""What arrives from the broker, before anything parses it, and what happens when handling it fails.

Anybody who can publish can send anything: a payload of a megabyte of ``[``, ``NaN`` where a
time should be, a string where a number should be. ``screen`` refuses the cheap cases on the
raw bytes, so nesting deeper than ``MAX_DEPTH`` never reaches a recursive parser (json,
pydantic) and an over-long payload is never parsed at all; the models refuse the rest (strict
types, finite and bounded numbers, see ``contract.read``). ``Health`` is the runtime's
last-resort guard around every handler: a refused message (``Rejected``) and an unexpected
exception are each counted (the counts travel in the component's retained status) and logged
at a bounded rate, one line per subscription and ``LOG_INTERVAL``, so a flood of junk cannot
flood the log, and the process carries on with the next message.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from printmesh_core.messages import Handler, Message

log = logging.getLogger("printmesh.inbound")

MAX_DEPTH = 16  # our deepest payload (a response's data holding a list of objects) nests 4 levels
JSON_LIMIT = 256 * 1024  # bytes: any JSON message (a hold plan of 10,000 layers is ~80 kB)
LAYERS_LIMIT = 8 * 1024 * 1024  # a layer table: ~110 bytes per layer
IMAGE_LIMIT = 64 * 1024 * 1024  # a JPEG: an 8K frame at quality 100 stays below it
PRESS_LIMIT = 4 * 1024  # a button press: any short payload
ID_SCAN = 16 * 1024  # bytes searched for a refused request's id
LOG_INTERVAL = 10.0  # s between two log lines about the same subscription
STATUS_INTERVAL = 5.0  # s at least between two status republications for new counts

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")
_NON_FINITE = re.compile(rb"NaN|Infinity")
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_ID_VALUE = re.compile(rb'\s*:\s*(?:"([^"\\]{1,200})"|(-?[0-9]{1,30})(?![0-9.eE]))')


_handling = threading.local()


def current_topic() -> str | None:
    """The topic of the message this thread is handling right now (for a queue that logs it later)."""
    return getattr(_handling, "topic", None)


class Rejected(ValueError):
    """A message refused before use: counted in the component's status, logged at a bounded rate."""


def too_deep(raw: bytes, bound: int = MAX_DEPTH) -> bool:
    """Whether ``raw`` nests brackets deeper than ``bound`` (or leaves them unbalanced).

    No parser is involved: strings are cut out, the brackets kept, and innermost pairs removed
    ``bound`` times; anything left is deeper than that, or not JSON at all.
    """
    if raw.count(b"[") + raw.count(b"{") <= bound:
        return False  # cannot nest deeper than it has brackets: the common case costs two scans
    skeleton = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    for _ in range(bound):
        if not skeleton:
            return False
        skeleton = skeleton.replace(b"[]", b"").replace(b"{}", b"")
    return bool(skeleton)


def screen(raw: bytes, limit: int = JSON_LIMIT, depth: int = MAX_DEPTH) -> None:
    """Raise ``Rejected`` for a JSON payload no parser should see: over-long, too deep, non-finite."""
    if len(raw) > limit:
        raise Rejected(f"payload of {len(raw)} bytes is over the {limit}-byte limit")
    if too_deep(raw, depth):
        raise Rejected(f"payload nests deeper than {depth} levels (or its brackets do not match)")
    if (b"NaN" in raw or b"Infinity" in raw) and _NON_FINITE.search(_STRING.sub(b"", raw)):
        raise Rejected("payload holds a non-finite number (NaN or Infinity)")


def recover_id(raw: bytes, limit: int = 128) -> str | None:
    """The top-level ``"id"`` of a request refused before parsing, to answer it; None if not found.

    Walks the strings and brackets of the first ``ID_SCAN`` bytes only, so the answer names the
    request's own id, not one nested inside it, and a refused payload costs little.
    """
    depth = 0
    for match in _TOKEN.finditer(raw, 0, ID_SCAN):
        token = match.group()
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
        elif depth == 1 and token == b'"id"':
            value = _ID_VALUE.match(raw, match.end())
            if value is not None:
                text = (value.group(1) or value.group(2)).decode("utf-8", "replace")
                return text if len(text) <= limit else None
    return None


@dataclass
class _Topic:
    """One subscription's log state: when it last logged, and what it kept quiet since."""

    last: float = float("-inf")
    quiet: int = 0


@dataclass
class Health:
    """Counts of refused messages and failed handlers, for the status; and their bounded log."""

    interval: float = LOG_INTERVAL
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[], None] | None = None  # republish the status (at most every STATUS_INTERVAL)
    rejected: int = 0
    failed: int = 0
    _log: dict[tuple[str, str], _Topic] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: bool = False
    _pushed: float = float("-inf")

    def handle(self, pattern: str, handler: Handler, message: Message) -> None:
        """Run one handler on one message; whatever it raises is counted, logged and survived."""
        _handling.topic = message.topic
        try:
            handler(message)
        except Rejected as exc:
            self.reject(pattern, message.topic, str(exc))
        except Exception as exc:
            self.fail(pattern, message.topic, exc)
        finally:
            _handling.topic = None

    def reject(self, pattern: str, topic: str, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            quiet = self._due("rejected", pattern)
        if quiet is not None:
            more = f" ({quiet} more refused on {pattern} since the last line)" if quiet else ""
            log.warning("refused a message on %s: %s%s", topic, reason, more)
        self._changed()

    def fail(self, pattern: str, topic: str, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            quiet = self._due("failed", pattern)
        if quiet is not None:
            more = f" ({quiet} more failed on {pattern} since the last line)" if quiet else ""
            log.error("handling a message on %s failed%s", topic, more, exc_info=exc)
        self._changed()

    def _due(self, kind: str, pattern: str) -> int | None:
        """Under the lock: the number kept quiet since the last line if one is due now, else None."""
        entry = self._log.setdefault((kind, pattern), _Topic())
        now = self.clock()
        if now - entry.last < self.interval:
            entry.quiet += 1
            return None
        quiet, entry.quiet, entry.last = entry.quiet, 0, now
        return quiet

    def _changed(self) -> None:
        if self.on_change is None:
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
            delay = max(0.0, self._pushed + STATUS_INTERVAL - self.clock())
        timer = threading.Timer(delay, self._push)
        timer.daemon = True
        timer.start()

    def _push(self) -> None:
        with self._lock:
            self._pending, self._pushed = False, self.clock()
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("republishing the status failed")
