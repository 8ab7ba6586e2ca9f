#!/usr/bin/env bash
# Regenerate examples/sample-box.gcode, the file the main job prints: a 20 x 20 x 6 mm box
# sliced by PrusaSlicer (apt-get install prusa-slicer) at 0.2 mm, 30 layers, z-hop on
# travel, no heat-up (temperatures 0, so the virtual printer does not wait 20 s to heat).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
command -v prusa-slicer >/dev/null || { echo "missing prusa-slicer: apt-get install -y prusa-slicer" >&2; exit 1; }
python3 - "$WORK/box.stl" <<'PY'
import sys
def facet(f, *pts):
    f.write("facet normal 0 0 0\nouter loop\n")
    for p in pts:
        f.write("vertex %.4f %.4f %.4f\n" % p)
    f.write("endloop\nendfacet\n")
with open(sys.argv[1], "w") as f:
    f.write("solid box\n")
    v = [(x * 20.0, y * 20.0, z * 6.0) for z in (0, 1) for y in (0, 1) for x in (0, 1)]
    for a, b, c, d in [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]:
        facet(f, v[a], v[b], v[c]); facet(f, v[a], v[c], v[d])
    f.write("endsolid box\n")
PY
HOME="$WORK" prusa-slicer --export-gcode --center 100,100 --fill-density 15% --layer-height 0.2 --first-layer-height 0.2 \
  --temperature 0 --bed-temperature 0 --first-layer-temperature 0 --first-layer-bed-temperature 0 --retract-lift 0.4 \
  --start-gcode $'G28 ; home\nG90\nM82\nG92 E0\nG1 Z2 F720 ; lift' \
  --output "$ROOT/examples/sample-box.gcode" "$WORK/box.stl" >"$WORK/log" 2>&1 || { cat "$WORK/log"; exit 1; }
echo "wrote examples/sample-box.gcode ($(grep -c '^;LAYER_CHANGE' "$ROOT/examples/sample-box.gcode") layers)"
