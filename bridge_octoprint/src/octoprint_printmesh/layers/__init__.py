"""Exact layer detection for the plugin, without OctoPrint (nothing here imports it).

* :func:`scan_file` / :func:`scan_stream` read a G-code file once, streaming, and return
  its layer table from the slicer's markers (styles: :mod:`.markers`), or, for a file
  without markers, the fallback detector's table (:mod:`.fallback`).
* :class:`LayerTracker` follows a print through a table: the plugin's gcode hook feeds it
  ``(filepos tag, line)`` for each line tagged ``source:file``; it returns a
  :class:`~printmesh_core.models.layers.LayerEvent` on the first line of each layer, before
  that line is sent. "The first line of layer N" is the first command line at or after
  layer N's marker (:mod:`.scanner` says why that precedes every extrusion of layer N).
* :class:`FallbackTracker` has the same interface and needs only the lines: a layer is
  extrusion at a new maximum Z (z-hops, travel, lifts, retracts, wipes ignored), or, in a
  sequential print, the next object's first extrusion back near the bed. It is the last
  resort; a table scanned from the file (fallback or markers) is exact and cheaper (it also
  tells a start G-code purge from the first layer, which needs lookahead: :mod:`.fallback`).

Layer numbers are 1-based physical layers in print order (raft included); the slicer's own
label (Cura's ``;LAYER:-5``..) is kept as ``slicer_layer``.
"""

from octoprint_printmesh.gcode import Motion
from octoprint_printmesh.layers.cache import Stamp, TableCache, stamp_of
from octoprint_printmesh.layers.fallback import FallbackDetector, FallbackTracker
from octoprint_printmesh.layers.scanner import ScanResult, scan_file, scan_stream
from octoprint_printmesh.layers.tracker import LayerTracker, Restarted, Tracker

__all__ = [
    "FallbackDetector",
    "FallbackTracker",
    "LayerTracker",
    "Motion",
    "Restarted",
    "ScanResult",
    "Stamp",
    "TableCache",
    "Tracker",
    "scan_file",
    "scan_stream",
    "stamp_of",
]
