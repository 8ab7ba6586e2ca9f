"""The outline scan as a child process, so that a big file's scan never holds OctoPrint's GIL.

Why a process and not a thread: the scan interprets every line of the file in Python (about a
second per hundred thousand lines on a Pi 4), and a print starts at the moment its outlines are
wanted. On a thread of OctoPrint's process the scan took the GIL in 5 ms slices from the comm
threads streaming that print: on bench/bridge_throughput.py's file it cost 9 % of the streaming
rate (bench/RESULTS.md, "the outline scan moved out of OctoPrint's process"). The child runs at
the lowest CPU priority, reads the layer table on stdin and writes the outlines as JSON to the
file it is given, renamed into place once whole, so a reader never sees half of one.

    python -m octoprint_printmesh.outline_process GCODE_FILE FLAVOUR OUT_FILE < table.json
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, get_args

if TYPE_CHECKING:  # the child lowers its priority before it imports anything heavy
    from octoprint_printmesh.gcode import Flavour
    from printmesh_core.models.layers import LayerOutlines, LayerTable


def outlines_of(disk_path: str, table: LayerTable, flavour: Flavour) -> LayerOutlines:
    """The outlines of every layer of ``table``, read from the file: this process's work, or the caller's."""
    from octoprint_printmesh.layers.outline import scan_outlines
    from printmesh_core.models.layers import LayerOutlines

    with open(disk_path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        layers = scan_outlines(source, table, flavour)
    return LayerOutlines(path=table.path, file_size=size, outlines=layers)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m octoprint_printmesh.outline_process GCODE_FILE FLAVOUR OUT_FILE", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(19)  # after OctoPrint's own threads, always
    from octoprint_printmesh.gcode import Flavour
    from printmesh_core import contract

    disk_path, flavour, out = argv
    if flavour not in get_args(Flavour):
        print(f"unknown flavour {flavour!r}: one of {', '.join(get_args(Flavour))}", file=sys.stderr)
        return 2
    table = contract.PRINTER_LAYERS.read(sys.stdin.buffer.read())  # screened, as any other process's message
    part = Path(out + ".part")
    part.write_bytes(outlines_of(disk_path, table, flavour).to_json())  # type: ignore[arg-type]  # checked above
    os.replace(part, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
