"""Layer marks written into a G-code file as it is uploaded, so a print needs no per-line hook.

OctoPrint calls a ``gcode.queuing`` hook for every line it sends, and even a hook that
returns at once costs the comm thread OctoPrint's dispatch around it: on a Pi that is a few
percent of the streaming rate (``bench/RESULTS.md``, bridge_throughput). At-commands are
different: OctoPrint hands a line starting with ``@`` to the ``atcommand.queuing`` hooks
and never sends it to the printer. So at upload the file gets

* ``@printmesh layer <n> [F<feed>]`` right before the first command line of layer ``n`` (the
  line the hold keeps back, :mod:`.scanner`), with the feed rate the file has set by then,
  which a hold restores;
* ``@printmesh track <line>`` right after every line that changes what the bridge tracks
  from the stream: the modes a hold restores (G90/G91, M82/M83, G28, M18/M84, M112) and the
  fans (M106/M107).

A marked print is then followed from the marks alone (the plugin takes its queuing hook out
while it runs, ``comm_hooks.HookSwitch``). Everything else in the file is copied byte for
byte; marks of an earlier upload are dropped and written anew, so marking is idempotent.
Lines sent from outside the file during a marked print (the terminal, the Control tab, pause
scripts, other plugins) are seen where they enter OctoPrint (``comm_hooks.HookSwitch``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from printmesh_core.models.layers import LayerTable

MARK = b"@printmesh"
LAYER_MARK = MARK + b" layer "
TRACK_MARK = MARK + b" track "
# what the queuing hook tracks besides feed rates (comm_hooks.MODAL | FANS), at a line's start
_TRACKED = re.compile(rb"(?:G9[01]|M8[234]|G28|M18|M112|M10[67])(?![0-9.])")
_FEED = re.compile(rb"G0?[0-3](?![0-9.])[^;]*?F[ \t]*([0-9]*\.?[0-9]+)")


@dataclass
class MarkStats:
    layers: int = 0  # layer marks written
    tracked: int = 0  # track marks written
    dropped: int = 0  # marks of an earlier upload dropped


def _lines(source: BinaryIO) -> Iterator[bytes]:
    """The file's lines as OctoPrint splits them (``\\n``, ``\\r\\n`` and a lone ``\\r``), ends kept."""
    for chunk in source:
        if b"\r" in chunk:
            yield from chunk.splitlines(keepends=True)
        else:
            yield chunk


def write_marked(source: BinaryIO, dest: BinaryIO, table: LayerTable) -> MarkStats:
    """Copy ``source`` to ``dest`` with the marks; ``table`` was scanned from ``source``."""
    starts = [(layer.offset, layer.layer) for layer in table.layers]
    stats = MarkStats()
    at = 0  # next layer start
    pos = 0  # offset of the current line in source
    feed: bytes | None = None
    write = dest.write
    for line in _lines(source):
        while at < len(starts) and starts[at][0] <= pos:
            write(LAYER_MARK + str(starts[at][1]).encode() + (b" F" + feed if feed else b"") + b"\n")
            stats.layers += 1
            at += 1
        pos += len(line)
        text = line.lstrip()
        if text.startswith(MARK):
            stats.dropped += 1
            continue
        write(line)
        if text[:1] not in (b"G", b"M"):
            continue
        if b";" in text:
            text = text[: text.index(b";")]
        text = text.rstrip()
        if text[:1] == b"G":
            m = _FEED.match(text)
            if m is not None and float(m.group(1)) > 0:
                feed = m.group(1)
        if _TRACKED.match(text):
            if not line.endswith((b"\n", b"\r")):
                write(b"\n")
            write(TRACK_MARK + text + b"\n")
            stats.tracked += 1
    return stats
