#!/usr/bin/env bash
# Regenerate tests/fixtures/gcode: small real slicer files and their expected layer tables.
#
# Needs the slicers from Debian: apt-get install -y cura-engine slic3r prusa-slicer
# (the tests never run a slicer; they read the committed files). CuraEngine needs Cura's
# machine definitions; they come from /usr/share/cura if the cura package is installed,
# else from the cura .deb, downloaded with apt-get and unpacked into a temporary directory
# (not installed: it would pull in Qt).
#
# The expected tables (<name>.json) are derived here, independently of the code under test:
# a naive whole-file reader finds each layer's marker line, the first command line after it,
# and the Z from the marker (or, for Cura, the last Z set before the layer's first extruding
# line), and the script asserts that those Z values agree with the slicing settings
# (first layer height + layer height x n, or the configured layer ranges).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/tests/fixtures/gcode"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
for tool in prusa-slicer slic3r CuraEngine python3 zip; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y cura-engine slic3r prusa-slicer zip" >&2; exit 1; }
done

DEFS=/usr/share/cura/resources/definitions
if [ ! -f "$DEFS/fdmprinter.def.json" ]; then
  (cd "$WORK" && apt-get download cura >/dev/null 2>&1 && dpkg-deb -x cura_*.deb curadeb) \
    || { echo "cannot get Cura's definitions: apt-get install cura, or allow apt-get download cura" >&2; exit 1; }
  DEFS="$WORK/curadeb/usr/share/cura/resources/definitions"
fi
mkdir -p "$OUT"
export HOME="$WORK"  # PrusaSlicer and Slic3r may write their config dirs under $HOME

# --- models: a 10x10x3 mm cube and a 10 mm x 4 mm cylinder (ASCII STL) ---
python3 - "$WORK" <<'PY'
import math, sys
out = sys.argv[1]
def facet(f, *pts):
    f.write("facet normal 0 0 0\nouter loop\n")
    for p in pts:
        f.write("vertex %.4f %.4f %.4f\n" % p)
    f.write("endloop\nendfacet\n")
with open(f"{out}/cube.stl", "w") as f:
    f.write("solid cube\n")
    v = [(x * 10.0, y * 10.0, z * 3.0) for z in (0, 1) for y in (0, 1) for x in (0, 1)]
    for a, b, c, d in [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]:
        facet(f, v[a], v[b], v[c]); facet(f, v[a], v[c], v[d])
    f.write("endsolid cube\n")
with open(f"{out}/cyl.stl", "w") as f:
    f.write("solid cyl\n")
    r, h, n = 5.0, 4.0, 24
    pts = [(r + r * math.cos(2 * math.pi * i / n), r + r * math.sin(2 * math.pi * i / n)) for i in range(n)]
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        facet(f, (x0, y0, 0), (x1, y1, 0), (x1, y1, h)); facet(f, (x0, y0, 0), (x1, y1, h), (x0, y0, h))
        facet(f, (r, r, 0), (x1, y1, 0), (x0, y0, 0)); facet(f, (r, r, h), (x0, y0, h), (x1, y1, h))
    f.write("endsolid cyl\n")
PY
CUBE="$WORK/cube.stl"; CYL="$WORK/cyl.stl"

# --- PrusaSlicer 2.5 ---
PRUSA=(prusa-slicer --export-gcode --center 100,100 --fill-density 10% --temperature 200 --bed-temperature 60)
prusa() { local name=$1; shift; "${PRUSA[@]}" --output "$OUT/$name.gcode" "$@" >"$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log"; exit 1; }; }
# purge line at Z0.3, above the 0.2 mm first layer, and lifts; z-hop on every travel
prusa prusa_zhop_purge --layer-height 0.2 --first-layer-height 0.2 --retract-lift 0.4 --retract-before-travel 0 \
  --start-gcode $'G28 ; home\nG1 Z5 F5000 ; lift\nG90\nM82\nG92 E0\nG1 X10 Y-3 F3000\nG1 Z0.3 F720\nG1 X60 E9 F1000 ; purge\nG1 X100 E12.5 F1000 ; purge\nG92 E0\nG1 Z2 F720 ; lift' \
  "$CUBE"
# relative E, firmware retraction (G10/G11), purge at Z0.2 *below* the 0.3 mm first layer
prusa prusa_relative_fwretract --layer-height 0.2 --first-layer-height 0.3 --use-relative-e-distances --use-firmware-retraction \
  --start-gcode $'G28 W ; home\nG1 Z5 F5000 ; lift\nG90\nM83\nG1 X10 Y-3 F3000\nG1 Z0.2 F720\nG1 X60 E9 F1000 ; purge\nG1 X100 E12.5 F1000 ; purge\nG1 Z2 F720 ; lift' \
  "$CUBE"
prusa prusa_vase --layer-height 0.2 --first-layer-height 0.2 --spiral-vase --fill-density 0% --perimeters 1 \
  --bottom-solid-layers 3 --top-solid-layers 0 "$CYL"
# ;LAYER_CHANGE plus Cura-style ;LAYER:n and Slic3r-style BEFORE/AFTER_LAYER_CHANGE in one file
prusa prusa_two_styles --layer-height 0.2 --first-layer-height 0.2 --use-relative-e-distances \
  --before-layer-gcode $';BEFORE_LAYER_CHANGE\nG92 E0.0\n;[layer_z]\n' \
  --layer-gcode $';AFTER_LAYER_CHANGE\n;[layer_z]\n;LAYER:[layer_num]' "$CUBE"
# variable layer height: a layer range 1..2 mm at 0.1 mm, in a 3MF project (what the GUI saves)
mkdir -p "$WORK/3mf" && (cd "$WORK/3mf" && prusa-slicer --export-3mf --output "$WORK/cube.3mf" "$CUBE" >/dev/null 2>&1 \
  && unzip -q "$WORK/cube.3mf" && rm "$WORK/cube.3mf" && cat >Metadata/Prusa_Slicer_layer_config_ranges.xml <<'XML'
<?xml version="1.0" encoding="utf-8"?>
<objects>
 <object id="1">
  <range min_z="1" max_z="2">
   <option opt_key="extruder">0</option>
   <option opt_key="layer_height">0.1</option>
  </range>
 </object>
</objects>
XML
  zip -q -r "$WORK/cube_ranges.3mf" .)
prusa prusa_variable --layer-height 0.2 --first-layer-height 0.2 "$WORK/cube_ranges.3mf"

# --- Slic3r 1.3: writes no layer comment by default ---
SLIC3R=(slic3r --print-center 100,100 --fill-density 10% --layer-height 0.2 --first-layer-height 0.3)
slic3r_() { local name=$1; shift; "${SLIC3R[@]}" --output "$OUT/$name.gcode" "$@" >"$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log"; exit 1; }; }
slic3r_ slic3r_plain_zhop --retract-lift 0.5 "$CUBE"
slic3r_ slic3r_verbose --gcode-comments "$CUBE"
slic3r_ slic3r_layer_gcode --retract-lift 0.5 --before-layer-gcode $';BEFORE_LAYER_CHANGE\n;[layer_z]' \
  --layer-gcode $';AFTER_LAYER_CHANGE\n;[layer_z]' "$CUBE"

# --- CuraEngine 4.13 with the Creality Ender-3 definition (stock purge line at Z0.3) ---
cura() {
  local name=$1; shift
  CuraEngine slice -j "$DEFS/creality_ender3.def.json" -o "$OUT/$name.gcode" -s center_object=true \
    -s infill_sparse_density=10 -s layer_height=0.2 -s layer_height_0=0.2 "$@" >"$WORK/$name.log" 2>&1 \
    || { tail -20 "$WORK/$name.log"; exit 1; }
}
cura cura_zhop_purge -s retraction_hop_enabled=true -s retraction_hop=0.4 -s retraction_combing=off -l "$CUBE"
cura cura_raft -s adhesion_type=raft -l "$CUBE"
cura cura_vase -s magic_spiralize=true -s infill_sparse_density=0 -s bottom_layers=2 -s top_layers=0 -l "$CYL"
cura cura_fwretract_relative -s machine_firmware_retract=true -s relative_extrusion=true -l "$CUBE"

# --- derived files and the expected tables ---
python3 - "$OUT" <<'PY'
import json, re, sys
from pathlib import Path

out = Path(sys.argv[1])
read = lambda name: (out / f"{name}.gcode").read_bytes()
write = lambda name, data: (out / f"{name}.gcode").write_bytes(data)

# Other slicers' marker styles, written into Slic3r's verbose file at its layer changes.
src = read("slic3r_verbose").decode()
layer_re = re.compile(r"^(G1 Z([\d.]+) F[\d.]+) ; move to next layer \((\d+)\)$", re.M)
def restyle(template):
    prev = [0.0]
    def sub(m):
        z, n = float(m.group(2)), int(m.group(3))
        h, prev[0] = z - prev[0], z
        return template.format(n=n, n1=n + 1, z=z, h=h) + m.group(1)
    return layer_re.sub(sub, src).encode()
write("s3d_style", restyle("; layer {n1}, Z = {z:.3f}\n"))
write("ideamaker_style", restyle(";LAYER:{n}\n;Z:{z:.3f}\n;HEIGHT:{h:.3f}\n"))
write("kisslicer_style", restyle("; BEGIN_LAYER_OBJECT z={z:.3f}\n"))

base = read("prusa_zhop_purge")
write("prusa_crlf", base.replace(b"\n", b"\r\n"))
# ends with the first command line of the last layer, without a newline
last = base.rindex(b";LAYER_CHANGE")
first_cmd = re.compile(rb"^[^;\n][^\n]*", re.M).search(base, last)
write("prusa_no_trailing_newline", base[: first_cmd.end()])
# layer 8 (Z 1.6) keeps its marker and moves but extrudes nothing (E words removed)
start = base.index(b";Z:1.6\n")
end = base.index(b";LAYER_CHANGE", start)
body = re.sub(rb"^(G1 [^\n]*?) E-?[\d.]+", rb"\1", base[start:end], flags=re.M)
write("prusa_layer_without_extrusion", base[:start] + body + base[end:])


# ---------- the naive reader (independent of the code under test) ----------
def lines_of(data):
    """(offset, OctoPrint filepos, text) per line, split and counted as OctoPrint does."""
    rows, off, pos = [], 0, 0
    for raw in data.splitlines(keepends=True):
        pos += len(raw.decode("utf-8", "replace").encode("utf-8"))
        rows.append((off, pos, raw.decode("utf-8", "replace").strip()))
        off += len(raw)
    return rows

def is_cmd(text):
    return bool(text) and not text.startswith(";")

def words(text):
    return {w[0]: w[1:] for w in text.split(";")[0].split()[1:] if w[:1].isalpha()}

MARKERS = {
    "prusa": lambda t: t == ";LAYER_CHANGE",
    "layer_number": lambda t: t.startswith(";LAYER:"),
    "simplify3d": lambda t: t.startswith("; layer "),
    "kisslicer": lambda t: t.startswith("; BEGIN_LAYER_OBJECT"),
    "before_layer_change": lambda t: t == ";BEFORE_LAYER_CHANGE",
    "slic3r_comments": lambda t: "; move to next layer (" in t,
}

def naive_table(data, style):
    rows = lines_of(data)
    marks = [i for i, r in enumerate(rows) if MARKERS[style](r[2])]
    # Z set before each line; extruding lines (absolute or relative E, with an XY move)
    z_before, z, e, rel, extruding = [], None, 0.0, False, set()
    for i, (_, _, t) in enumerate(rows):
        z_before.append(z)
        if not is_cmd(t):
            continue
        head, w = t.split()[0], words(t)
        rel = True if head == "M83" else False if head == "M82" else rel
        if head == "G92" and "E" in w:
            e = float(w["E"])
        if head in ("G0", "G1"):
            if "E" in w:
                de = float(w["E"]) if rel else float(w["E"]) - e
                e = e + float(w["E"]) if rel else float(w["E"])
                if de > 0 and ("X" in w or "Y" in w):
                    extruding.add(i)
            if "Z" in w:
                z = float(w["Z"])
    layers, prev = [], 0.0
    for k, m in enumerate(marks):
        first = next(i for i in range(m, len(rows)) if is_cmd(rows[i][2]))
        nxt = marks[k + 1] if k + 1 < len(marks) else len(rows)
        t = rows[m][2]
        number = height = None
        if style == "prusa":
            block = [r[2] for r in rows[m : m + 4]]
            lz = float(next(b for b in block if b.startswith(";Z:"))[3:])
            height = float(next(b for b in block if b.startswith(";HEIGHT:"))[8:])
        elif style == "simplify3d":
            number, lz = int(t.split()[2].rstrip(",")), float(t.split("=")[1])
        elif style == "kisslicer":
            lz = float(t.split("z=")[1])
        elif style == "before_layer_change":
            lz = float(next(r[2] for r in rows[m + 1 : nxt] if re.fullmatch(r";[\d.]+", r[2]))[1:])
        elif style == "slic3r_comments":
            number, lz = int(t.split("(")[1].split(")")[0]), float(words(t)["Z"])
        else:  # ;LAYER:n (Cura; ideaMaker adds ;Z:/;HEIGHT:)
            number = int(t[7:])
            zline = next((r[2] for r in rows[m + 1 : m + 3] if r[2].startswith(";Z:")), None)
            if zline is not None:
                lz = float(zline[3:])
            else:
                ext = next((i for i in range(m, nxt) if i in extruding), None)
                lz = z_before[ext] if ext is not None else z_before[first + 1]
        h = height if height is not None else round(lz - prev, 6)
        layers.append({"layer": k + 1, "z": round(lz, 6), "height": round(h, 6) if h > 0 else None,
                       "offset": rows[first][0], "file_pos": rows[first][1], "slicer_layer": number})
        prev = lz
    return layers

def arithmetic(first, step, top, ranges=()):
    """Z of every layer from the settings: first layer, then `step` (or a range's step) up to `top`.

    `top` is the object height, or the last Z the slicer keeps below it: Slic3r 1.3 adds a
    layer past the top (3.1 for a 3 mm cube at 0.3 + 0.2 n), PrusaSlicer stops below (2.9).
    """
    zs, z = [round(first, 6)], first
    while z < top - 1e-6:
        s = next((h for lo, hi, h in ranges if lo - 1e-6 <= z < hi - 1e-6), step)
        z = round(z + s, 6)
        zs.append(z)
    return zs

SPECS = {
    # name: (style, slicer settings, Z values expected from the settings, fallback expectation)
    "prusa_zhop_purge": ("prusa", "PrusaSlicer 2.5: layer 0.2, first 0.2, z-hop 0.4 on every travel, purge at Z0.3",
                         arithmetic(0.2, 0.2, 3.0), None),
    "prusa_relative_fwretract": ("prusa", "PrusaSlicer 2.5: M83, G10/G11, layer 0.2, first 0.3, purge at Z0.2",
                                 arithmetic(0.3, 0.2, 2.9), None),  # PrusaSlicer: no layer above the top
    "prusa_vase": ("prusa", "PrusaSlicer 2.5: spiral vase, 3 bottom layers, layer 0.2", arithmetic(0.2, 0.2, 4.0),
                   {"z": "revolution start", "note": "a spiral revolution is labelled with the Z it ends at "
                    "(;Z:); the fallback reports where it starts, one step lower. Count and heights agree."}),
    "prusa_two_styles": ("prusa", "PrusaSlicer 2.5: ;LAYER_CHANGE + ;LAYER:[layer_num] + BEFORE/AFTER_LAYER_CHANGE",
                         arithmetic(0.2, 0.2, 3.0), None),
    "prusa_variable": ("prusa", "PrusaSlicer 2.5: layer 0.2, 0.1 between Z1 and Z2 (layer range in a 3MF)",
                       arithmetic(0.2, 0.2, 3.0, ranges=[(1.0, 2.0, 0.1)]), None),
    "prusa_crlf": ("prusa", "prusa_zhop_purge with CRLF line ends", arithmetic(0.2, 0.2, 3.0), None),
    "prusa_no_trailing_newline": ("prusa", "prusa_zhop_purge cut after the last layer's first line, no newline",
                                  arithmetic(0.2, 0.2, 3.0),
                                  {"total_layers": 14, "note": "the last layer never extrudes (the file ends)"}),
    "prusa_layer_without_extrusion": ("prusa", "prusa_zhop_purge with layer 8 (Z1.6) printing nothing",
                                      arithmetic(0.2, 0.2, 3.0),
                                      {"total_layers": 14, "note": "no extrusion at Z1.6: layers 8 and 9 are one "
                                       "step of 0.4 mm for the fallback"}),
    "slic3r_plain_zhop": (None, "Slic3r 1.3 defaults (no layer comments): layer 0.2, first 0.3, z-hop 0.5",
                          arithmetic(0.3, 0.2, 3.0), None),
    "slic3r_verbose": ("slic3r_comments", "Slic3r 1.3 --gcode-comments: layer 0.2, first 0.3",
                       arithmetic(0.3, 0.2, 3.0), None),
    "slic3r_layer_gcode": ("before_layer_change", "Slic3r 1.3: BEFORE/AFTER_LAYER_CHANGE with [layer_z], z-hop 0.5",
                           arithmetic(0.3, 0.2, 3.0), None),
    "s3d_style": ("simplify3d", "slic3r_verbose with Simplify3D's '; layer n, Z = z' written in",
                  arithmetic(0.3, 0.2, 3.0), None),
    "ideamaker_style": ("layer_number", "slic3r_verbose with ideaMaker's ;LAYER:n ;Z: ;HEIGHT: written in",
                        arithmetic(0.3, 0.2, 3.0), None),
    "kisslicer_style": ("kisslicer", "slic3r_verbose with KISSlicer's '; BEGIN_LAYER_OBJECT z=' written in",
                        arithmetic(0.3, 0.2, 3.0), None),
    "cura_zhop_purge": ("layer_number", "CuraEngine 4.13, Ender-3: layer 0.2, first 0.2, z-hop 0.4, purge at Z0.3",
                        arithmetic(0.2, 0.2, 3.0), None),
    "cura_fwretract_relative": ("layer_number", "CuraEngine 4.13, Ender-3: M83, G10/G11, layer 0.2, first 0.2",
                                arithmetic(0.2, 0.2, 3.0), None),
    "cura_vase": ("layer_number", "CuraEngine 4.13, Ender-3: spiralize, layer 0.2", arithmetic(0.2, 0.2, 4.0),
                  {"total_layers": 22, "note": "Cura puts the first spiral revolution into the last flat layer "
                   "(;LAYER:6 holds a flat ring at Z1.4 and the climb to 1.6) and ends with a half revolution "
                   "and a flat ring at Z4.1: 7 flat + 13 full revolutions + 2 = 22 for the fallback."}),
    "cura_raft": ("layer_number", "CuraEngine 4.13, Ender-3: raft (base 0.3, interface 0.15, 2 x surface 0.1, "
                  "air gap 0.3), layer 0.2", None,
                  {"total_layers": 18, "note": "Cura prints the first layer above the raft 0.22 mm higher "
                   "(layer_0_z_overlap) than it steps down for the next: Z1.15 then 1.13. No new maximum, so "
                   "the fallback merges them. (Cura's ;LAYER_COUNT:15 leaves the 4 raft layers out.)"}),
}

for name, (style, settings, zs, fallback) in SPECS.items():
    data = read(name)
    header = next((l for l in data.decode("utf-8", "replace").splitlines()[:40]
                   if "generated" in l.lower()), "").strip("; ")
    layers = naive_table(data, style) if style else [
        {"layer": i + 1, "z": z, "height": round(z - (zs[i - 1] if i else 0.0), 6)} for i, z in enumerate(zs)]
    if zs is not None:
        assert [l["z"] for l in layers] == zs, (name, [l["z"] for l in layers], zs)
    doc = {
        "file": f"{name}.gcode", "generator": header, "settings": settings, "style": style,
        "file_size": len(data), "total_layers": len(layers),
        "total_height": max(l["z"] for l in layers), "layers": layers,
        "fallback": fallback or {"same_as_markers": True},
    }
    (out / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{name:32s} {len(data):7d} bytes  {style or 'no markers':20s} {len(layers):3d} layers")
PY
