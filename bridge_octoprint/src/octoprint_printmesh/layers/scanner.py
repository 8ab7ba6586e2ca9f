"""Streaming scan of a G-code file into a layer table, with positions OctoPrint will report.

One pass, constant memory apart from the table itself: the file is read in 1 MiB blocks and
split the way OctoPrint splits it when printing (``open(..., newline="")``: ``\\n``, ``\\r\\n``
and a lone ``\\r`` all end a line; ``bytes.splitlines`` does exactly that).

**The first line of layer N** is the first *command* line (not blank, not comment-only) at or
after layer N's start marker. OctoPrint strips comments and never sends comment-only lines, so
this is the first line of the layer a hook can see. Every line of layer N, extrusion included,
comes after its marker, so the first command line at or after the marker is sent no later than
the first extrusion of layer N, and the hook sees it before it is sent. (Cura moves Z to the
next layer *before* ``;LAYER:n``; that travel belongs to layer N-1 in the file and prints
nothing, so it does not matter.)

Positions: ``offset`` is where that line starts in the file; ``file_pos`` is what OctoPrint's
``filepos:`` tag says for it: the bytes read up to and including the line. OctoPrint counts
``len(line.encode("utf-8"))`` of the line it decoded with ``errors="replace"``, so a line with
invalid UTF-8 advances its count by more than the raw bytes; the scanner counts the same way
(only for non-ASCII lines, which are rare). With ``file_pos`` the tracker's test is exact: the
first line whose tag is ``>= file_pos`` is the layer's first line.

Markers need only a light pass (see :mod:`.collect`); the fallback table needs every line
interpreted, which is several times slower, so :func:`scan_file` builds it only for files
without markers (a second read) or when asked to (``fallback=True``: one full pass).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from octoprint_printmesh.gcode import DEFAULT_FLAVOUR, Flavour
from octoprint_printmesh.layers.collect import HEADER_BYTES, Collector, Row, last_e_line
from octoprint_printmesh.layers.markers import PRIORITY
from printmesh_core.models.layers import LayerInfo, LayerSource, LayerTable, MarkerStyle

BLOCK = 1 << 20
_BOM = b"\xef\xbb\xbf"
_SAME_Z = 1e-4
# Lines the light gear needs: comments, Z moves, modes (G9x, M8x, G28), arcs, and anything
# unusual (lower case, line numbers) that only the motion model can judge.
_INTERESTING = re.compile(
    rb"^[ \t]*(?:;[ \t]*(?:LAYER|Z:|HEIGHT:|[Ll]ayer |BEGIN_LAYER|BEFORE_LAYER|AFTER_LAYER|[-+.\d])"
    rb"|G[0-3][^;\n]*Z|G9|G2|G3|M8|[a-zN]|@printmesh layer )",
    re.MULTILINE,
)


@dataclass
class ScanResult:
    """The markers' table (None without markers) and, if it was built, the fallback's."""

    markers: LayerTable | None
    fallback: LayerTable | None
    counts: dict[str, int] = field(default_factory=dict)  # layers found per marker style

    @property
    def table(self) -> LayerTable:
        """What to track: the markers when there are any, else the fallback."""
        table = self.markers if self.markers is not None else self.fallback
        assert table is not None  # scan_file always builds one of them
        return table


def scan_stream(
    stream: BinaryIO,
    path: str | None = None,
    fallback: bool = False,
    min_layer_height: float = 0.0,
    flavour: Flavour = DEFAULT_FLAVOUR,
) -> ScanResult:
    """Scan a binary stream from its start in one pass; ``fallback`` also builds the fallback table."""
    scan = Collector(full=fallback, min_layer_height=min_layer_height, flavour=flavour)
    offset = 0  # raw bytes before the current block
    delta = 0  # OctoPrint's count minus the raw bytes (grows only on invalid UTF-8)
    carry = b""
    while True:
        block = stream.read(BLOCK)
        data = carry + block
        cut = data.rfind(b"\n") + 1 if block else len(data)  # keep an incomplete last line (or "\r") for later
        data, carry = data[:cut], data[cut:]
        if offset == 0:
            scan.header(data[:HEADER_BYTES])
        if data.isascii() and data.count(b"\r") == data.count(b"\r\n"):
            _fast(scan, data, offset, delta)
        else:
            delta = _slow(scan, data, offset, delta)
        offset += len(data)
        if not block:
            break
    return _finish(scan, offset, path)


def _line(scan: Collector, line: bytes, start: int, file_pos: int) -> None:
    text = line.lstrip()
    if start == 0 and text.startswith(_BOM):
        text = text[3:].lstrip()
    if text:
        if text[0] == 59:  # ";": a comment-only line, which OctoPrint never sends
            scan.comment(text, start)
        else:
            scan.command(text, start, file_pos)


def _slow(scan: Collector, data: bytes, offset: int, delta: int) -> int:
    """Line by line: for blocks with non-ASCII bytes or a lone CR (OctoPrint ends a line there)."""
    for line in data.splitlines(keepends=True):
        if not line.isascii():
            delta += len(line.decode("utf-8", "replace").encode("utf-8")) - len(line)
        _line(scan, line, offset, offset + len(line) + delta)
        offset += len(line)
    scan.e_carry = last_e_line(data, len(data)) or scan.e_carry
    return delta


def _fast(scan: Collector, data: bytes, offset: int, delta: int) -> None:
    """ASCII with LF or CRLF ends: let a regex skip the lines no marker rule needs."""
    pos, end = 0, len(data)
    search, find = _INTERESTING.search, data.find
    while pos < end:
        if scan.every_line:
            start = pos
        else:
            m = search(data, pos)
            if m is None:
                break
            start = m.start()
            scan.e_block = (data, start)  # the lines skipped may have moved E
        stop = find(b"\n", start) + 1 or end
        _line(scan, data[start:stop], offset + start, offset + stop + delta)
        pos = stop
    scan.e_carry = last_e_line(data, end) or scan.e_carry


def scan_file(
    path: str | Path, fallback: bool = False, min_layer_height: float = 0.0, flavour: Flavour = DEFAULT_FLAVOUR
) -> ScanResult:
    """Scan a file on disk; without markers it is read a second time for the fallback table."""
    with open(path, "rb") as f:
        return scan_seekable(f, str(path), fallback, min_layer_height, flavour)


def scan_seekable(
    f: BinaryIO,
    path: str | None = None,
    fallback: bool = False,
    min_layer_height: float = 0.0,
    flavour: Flavour = DEFAULT_FLAVOUR,
) -> ScanResult:
    """Like :func:`scan_file`, from a seekable stream's start."""
    result = scan_stream(f, path, fallback, min_layer_height, flavour)
    if result.markers is None and result.fallback is None:
        f.seek(0)
        result = scan_stream(f, path, True, min_layer_height, flavour)
    return result


def _finish(scan: Collector, size: int, path: str | None) -> ScanResult:
    counts = {style: sum(1 for r in rows if r.offset >= 0) for style, rows in scan.rows.items()}
    markers = None
    for style in PRIORITY:
        if counts[style]:
            rows = [r for r in scan.rows[style] if r.offset >= 0]
            layers = _marker_layers(rows, merge_same_z=style == "kisslicer")
            markers = _table("markers", style, layers, scan.generator, path, size)
            break
    fallback = None
    if scan.full:
        fallback_layers = [
            _info(i + 1, r.z, r.height if i else r.z, r.offset, r.file_pos, None)  # layer 1 measured from the bed
            for i, r in enumerate(scan.fallback.rows)
        ]
        fallback = _table("fallback", None, fallback_layers, scan.generator, path, size)
    return ScanResult(
        _marked(markers, scan.marks), _marked(fallback, scan.marks), {k: v for k, v in counts.items() if v}
    )


def _marked(table: LayerTable | None, marks: list[tuple[int, int]]) -> LayerTable | None:
    """The table followed from the file's '@printmesh layer' marks, when there is one per layer.

    For a table from the slicer's markers the mark is the layer's first command line
    already; the fallback's layers start at a move, which the mark was written before.
    """
    if table is None or not marks or len(marks) != len(table.layers):
        return table
    layers = [
        layer.model_copy(update={"offset": offset, "file_pos": file_pos})
        for layer, (offset, file_pos) in zip(table.layers, marks, strict=True)
    ]
    return table.model_copy(update={"layers": layers, "marked": True})


def _marker_layers(rows: list[Row], merge_same_z: bool) -> list[LayerInfo]:
    layers: list[LayerInfo] = []
    prev_z = 0.0
    for row in rows:
        z = row.z if row.z is not None else row.z_seen if row.z_seen is not None else prev_z
        if merge_same_z and layers and abs(z - prev_z) < _SAME_Z:
            continue  # KISSlicer writes one BEGIN_LAYER_OBJECT per object at the same Z
        height = row.height if row.height is not None else z - prev_z if z - prev_z > _SAME_Z else None
        layers.append(_info(len(layers) + 1, z, height, row.offset, row.file_pos, row.number))
        prev_z = z
    return layers


def _info(layer: int, z: float, height: float | None, offset: int, file_pos: int, number: int | None) -> LayerInfo:
    return LayerInfo(
        layer=layer,
        z=round(z, 6),
        height=None if height is None else round(height, 6),
        offset=offset,
        file_pos=file_pos,
        slicer_layer=number,
    )


def _table(
    source: LayerSource,
    style: MarkerStyle | None,
    layers: list[LayerInfo],
    generator: str | None,
    path: str | None,
    size: int,
) -> LayerTable:
    return LayerTable(
        source=source,
        style=style,
        generator=generator,
        path=path,
        file_size=size,
        total_layers=len(layers),
        total_height=max((layer.z for layer in layers), default=0.0),
        layers=layers,
    )
