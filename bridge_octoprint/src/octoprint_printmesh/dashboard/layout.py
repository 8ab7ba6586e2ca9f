"""The tab's widgets: which exist, their order, and which are shown (and only while printing).

Saved on the server in ``plugins.printmesh.dashboard.widgets``, so every browser and the
kiosk screen show the same layout. A saved list is normalised: unknown widgets dropped,
duplicates ignored, widgets added by a newer version appended (shown).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from printmesh_core.config import ConfigError, Strict, format_validation_error

WidgetId = Literal[
    "printer", "job", "times", "layers", "layer_times", "heat", "webcam", "sensors", "host", "shell", "mesh"
]
WIDGETS: tuple[str, ...] = ("printer", "job", "times", "layers", "layer_times", "heat", "webcam", "sensors", "host",
                            "shell", "mesh")  # fmt: skip


class Widget(Strict):
    id: WidgetId
    enabled: bool = True
    printing_only: bool = False


class Layout(Strict):
    widgets: list[Widget] = Field(max_length=64)


DEFAULT_WIDGETS: list[dict[str, Any]] = [Widget(id=w).model_dump() for w in WIDGETS]


def normalise(raw: Any) -> list[dict[str, Any]]:
    """A stored or submitted list made whole; raises ConfigError naming the bad field."""
    try:
        layout = Layout.model_validate({"widgets": raw if raw is not None else []})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for widget in layout.widgets:
        if widget.id not in seen:
            seen.add(widget.id)
            out.append(widget.model_dump())
    out += [w for w in DEFAULT_WIDGETS if w["id"] not in seen]
    return out


def lenient(raw: Any) -> list[dict[str, Any]]:
    """What the page gets from whatever is stored: the defaults if it cannot be read."""
    try:
        return normalise(raw)
    except ConfigError:
        return [dict(w) for w in DEFAULT_WIDGETS]
