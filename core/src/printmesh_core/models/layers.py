"""Layer payloads: the layer table of a G-code file and the event fired when a layer starts.

Layer numbers are 1-based and count physical layers in print order: layer 1 is the first
layer laid on the bed, raft layers included (Cura writes those as ``;LAYER:-3`` .. ``;LAYER:-1``
and the first model layer as ``;LAYER:0``; that label is kept in ``slicer_layer``). This is the
number a person counts on the printer and what a slicer's preview slider shows.

Positions are bytes. ``offset`` is where the layer's first line starts; ``file_pos`` is what
OctoPrint's ``filepos:<n>`` tag carries for that line, i.e. the bytes it has read up to and
including it (the line's end). A plugin hook compares the tag of each line against ``file_pos``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART, Coord, Payload

LayerSource = Literal["markers", "fallback"]
MarkerStyle = Literal[
    "prusa",  # ;LAYER_CHANGE + ;Z: + ;HEIGHT: (PrusaSlicer, SuperSlicer, OrcaSlicer)
    "layer_number",  # ;LAYER:n (Cura, ideaMaker; ideaMaker adds ;Z: and ;HEIGHT:)
    "simplify3d",  # ; layer n, Z = z
    "kisslicer",  # ; BEGIN_LAYER_OBJECT z=z
    "before_layer_change",  # ;BEFORE_LAYER_CHANGE (+ ;[layer_z]) from a Slic3r-family layer G-code setting
    "after_layer_change",  # ;AFTER_LAYER_CHANGE (+ ;[layer_z])
    "slic3r_comments",  # Slic3r's verbose G-code: "G1 Z.. ; move to next layer (n)"
]


class LayerInfo(BaseModel):
    """One row of the layer table."""

    model_config = PART

    layer: int = Field(ge=1, description="1-based physical layer number in print order (raft layers included).")
    z: Coord = Field(description="Layer Z in mm: the slicer's value when a marker carries it, else the Z extruded at.")
    height: Coord | None = Field(
        description="Layer thickness in mm: the slicer's ;HEIGHT: if given, else the Z step from the layer below;"
        " None when Z went down (Cura lowers the second layer above a raft by its initial layer Z overlap)."
    )
    offset: int = Field(ge=0, description="Byte offset where the layer's first line starts.")
    file_pos: int = Field(ge=0, description="OctoPrint's filepos tag of that line: bytes read up to its end.")
    slicer_layer: int | None = Field(
        default=None, description="The layer number as the slicer wrote it (Cura: -n for raft layers, 0 first)."
    )


class LayerTable(Payload):
    """Every layer of one file, read once when the file is added (or when a print starts)."""

    source: LayerSource = Field(description="'markers': slicer comments; 'fallback': extrusion at a new maximum Z.")
    style: MarkerStyle | None = Field(default=None, description="Which marker style was used (None for fallback).")
    generator: str | None = Field(default=None, description="The slicer named in the file header, if any.")
    path: str | None = Field(default=None, description="Storage path of the file, when the caller knows it.")
    file_size: int = Field(ge=0, description="Bytes scanned.")
    total_layers: int = Field(ge=0)
    total_height: Coord = Field(description="Highest layer Z in mm (0 when there are no layers).")
    layers: list[LayerInfo]
    marked: bool = Field(
        default=False,
        description="The file carries the bridge's '@printmesh layer' marks (written at upload) at every layer's"
        " first line: a print of it is followed from the marks, with no per-line hook.",
    )


class LayerEvent(Payload):
    """Layer ``layer`` starts: fired on its first line, before that line reaches the printer."""

    layer: int = Field(ge=1, description="1-based physical layer number (see LayerInfo.layer).")
    z: Coord
    height: Coord | None = Field(default=None, description="Layer thickness in mm, when known.")
    file_pos: int = Field(ge=0, description="OctoPrint's filepos tag of the line the event fired on.")
    total_layers: int | None = Field(default=None, description="From the layer table; None for the live fallback.")
    total_height: Coord | None = None
    source: LayerSource
    slicer_layer: int | None = None
    path: str | None = None


Point2 = tuple[Coord, Coord]


class LayerOutline(BaseModel):
    """Where one layer puts material in the bed's XY (mm): what the print watch projects into a camera.

    Centre lines of the extrusion: the material reaches half an extrusion width further."""

    model_config = PART

    layer: int = Field(ge=1)
    z: Coord = Field(description="The layer's top, mm.")
    height: Coord | None = Field(default=None, description="Layer thickness, mm (None: not known).")
    hulls: list[list[Point2]] = Field(
        default_factory=list, description="Convex hulls (counter-clockwise) of the layer's islands of extrusion."
    )
    rings: list[list[Point2]] = Field(
        default_factory=list,
        description="Closed paths printed apart from what they enclose (a skirt, a draft shield): the material is"
        " the path itself, the bed inside it is empty.",
    )


class LayerOutlines(Payload):
    """Every layer's outline of the file being printed, computed by the bridge after its layer table.

    Read by the coordinator's print watch, which projects the printed layers into each capture."""

    path: str | None = Field(default=None, description="Storage path of the file, as in the layer table.")
    file_size: int = Field(ge=0, description="Bytes of the file the outlines were read from.")
    outlines: list[LayerOutline]
