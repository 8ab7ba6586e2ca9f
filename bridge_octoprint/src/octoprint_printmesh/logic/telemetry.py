"""OctoPrint's data dicts -> printmesh payloads, and when temperatures are worth publishing.

The input shapes are OctoPrint 1.11's: ``printer.get_current_data()`` (state, job,
progress, currentZ), ``get_current_temperatures()`` or the pushed temperature dict
(``{'time', 'tool0': {'actual', 'target'}, 'bed', 'chamber'}``), the printer profile
dict, and event payloads. OctoPrint hands out frozendicts and sometimes None or a
missing key (a chamber the printer lacks, a time left not computed yet), so every reader
here accepts any Mapping and turns anything unexpected into null rather than raising:
a telemetry hiccup must never take the plugin down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from printmesh_core.models.printer import (
    AxisSpeeds,
    BuildVolume,
    CustomBox,
    HeaterTemperature,
    PrinterConnection,
    PrinterEvent,
    PrinterJob,
    PrinterProfile,
    PrinterState,
    PrinterTemperatures,
    StateFlags,
)

_FLAGS = {
    "operational": "operational", "printing": "printing", "paused": "paused", "pausing": "pausing",
    "resuming": "resuming", "cancelling": "cancelling", "finishing": "finishing", "error": "error",
    "ready": "ready", "closedOrError": "closed_or_error", "sdReady": "sd_ready",
}  # fmt: skip
_JSON_DEPTH = 8


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def connection_payload(connection: Sequence[Any], firmware: str | None, now: float) -> PrinterConnection:
    """From ``printer.get_current_connection()``: ``(state, port, baudrate, profile)``."""
    state, port, baudrate = [*connection, None, None, None][:3]
    return PrinterConnection(
        ts=now, state=_str(state) or "Unknown", port=_str(port), baudrate=_int(baudrate), firmware=firmware
    )


def state_payload(data: Mapping[str, Any], now: float, *, on_hold: bool) -> PrinterState:
    state = _map(data.get("state"))
    raw_flags = _map(state.get("flags"))
    flags = StateFlags(**{ours: raw_flags.get(theirs) is True for theirs, ours in _FLAGS.items()})
    return PrinterState(
        ts=now,
        text=_str(state.get("text")) or "Unknown",
        flags=flags,
        error=_str(state.get("error")),
        current_z=_num(data.get("currentZ")),
        on_hold=on_hold,
    )


def profile_payload(profile: Mapping[str, Any], now: float) -> PrinterProfile:
    """From ``printer_profile_manager.get_current_or_default()``; missing keys take OctoPrint's defaults."""
    vol = _map(profile.get("volume"))
    form = "circular" if vol.get("formFactor") == "circular" else "rectangular"
    origin = "center" if form == "circular" or vol.get("origin") == "center" else "lowerleft"
    width = _num(vol.get("width")) or 200.0
    depth = width if form == "circular" else _num(vol.get("depth")) or 200.0
    height = _num(vol.get("height")) or 200.0
    box = None
    raw_box = vol.get("custom_box")
    if isinstance(raw_box, Mapping) and raw_box:
        half = origin == "center"
        default = {
            "x_min": -width / 2 if half else 0.0, "x_max": width / 2 if half else width,
            "y_min": -depth / 2 if half else 0.0, "y_max": depth / 2 if half else depth,
            "z_min": 0.0, "z_max": height,
        }  # fmt: skip
        values = {k: v if (v := _num(raw_box.get(k))) is not None else d for k, d in default.items()}
        box = CustomBox(**values)
    extruder = _map(profile.get("extruder"))
    axes = _map(profile.get("axes"))
    speeds = {a: s for a in ("x", "y", "z", "e") if (s := _num(_map(axes.get(a)).get("speed"))) and s > 0}
    return PrinterProfile(
        ts=now,
        id=_str(profile.get("id")),
        name=_str(profile.get("name")) or _str(profile.get("id")) or "Unknown",
        model=_str(profile.get("model")),
        volume=BuildVolume(width=width, depth=depth, height=height, origin=origin, form_factor=form, custom_box=box),
        heated_bed=profile.get("heatedBed", True) is not False,
        heated_chamber=profile.get("heatedChamber") is True,
        extruder_count=max(1, _int(extruder.get("count")) or 1),
        nozzle_diameter=_num(extruder.get("nozzleDiameter")),
        speeds=AxisSpeeds(**speeds),
    )


def _heater(value: Any) -> HeaterTemperature | None:
    raw = _map(value)
    heater = HeaterTemperature(
        actual=_num(raw.get("actual")), target=_num(raw.get("target")), offset=_num(raw.get("offset"))
    )
    return None if heater.actual is None and heater.target is None else heater


def temperatures_payload(data: Mapping[str, Any], now: float) -> PrinterTemperatures:
    """Either shape OctoPrint uses (pushed, with 'time'; or polled, with 'offset')."""
    tools = {}
    for key in sorted(data):
        if isinstance(key, str) and key.startswith("tool") and key[4:].isdigit():
            heater = _heater(data[key])
            if heater is not None:
                tools[key] = heater
    return PrinterTemperatures(ts=now, tools=tools, bed=_heater(data.get("bed")), chamber=_heater(data.get("chamber")))


@dataclass(frozen=True)
class TemperaturePolicy:
    threshold: float = 0.5  # °C change in any actual worth a message
    min_interval: float = 1.0  # s between two messages for small changes
    max_interval: float = 30.0  # s: republish even when nothing changed (a heartbeat with fresh ts)


def _heaters(t: PrinterTemperatures) -> dict[str, HeaterTemperature | None]:
    return {**t.tools, "bed": t.bed, "chamber": t.chamber}


def should_publish_temperatures(
    last: PrinterTemperatures | None, new: PrinterTemperatures, now: float, policy: TemperaturePolicy
) -> bool:
    """Publish the first reading, any target change or heater (dis)appearing at once, an actual
    that moved by ``threshold`` once ``min_interval`` has passed, and anything after ``max_interval``."""
    if last is None or now - last.ts >= policy.max_interval or now < last.ts:
        return True
    old, cur = _heaters(last), _heaters(new)
    if set(old) != set(cur):
        return True
    moved = False
    for name, heater in cur.items():
        before = old[name]
        if (heater is None) != (before is None):
            return True
        if heater is None or before is None:
            continue
        if heater.target != before.target or (heater.actual is None) != (before.actual is None):
            return True
        if heater.actual is not None and before.actual is not None:
            moved = moved or abs(heater.actual - before.actual) >= policy.threshold
    return moved and now - last.ts >= policy.min_interval


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def job_payload(data: Mapping[str, Any], now: float, started_at: float | None) -> PrinterJob:
    """From ``get_current_data()``; ``started_at`` is when PrintStarted fired (the shell keeps it)."""
    job = _map(data.get("job"))
    file = _map(job.get("file"))
    progress = _map(data.get("progress"))
    print_time = _num(progress.get("printTime"))
    left = _num(progress.get("printTimeLeft"))
    completion = _num(progress.get("completion"))
    total = print_time + left if print_time is not None and left is not None else _num(job.get("estimatedPrintTime"))
    eta_unix = round(now + left, 3) if left is not None else None
    return PrinterJob(
        ts=now,
        file_name=_str(file.get("display")) or _str(file.get("name")),
        file_path=_str(file.get("path")),
        file_size=_int(file.get("size")),
        file_origin=_str(file.get("origin")),
        progress=None if completion is None else round(min(100.0, max(0.0, completion)), 2),
        file_position=_int(progress.get("filepos")),
        print_time=print_time,
        print_time_left=left,
        print_time_left_origin=_str(progress.get("printTimeLeftOrigin")) if left is not None else None,
        estimated_total=total,
        eta=None if eta_unix is None else _iso(eta_unix),
        eta_unix=eta_unix,
        started_at=started_at,
        time_since_start=None if started_at is None else round(max(0.0, now - started_at), 3),
    )


def json_safe(value: Any, depth: int = 0) -> Any:
    """Frozendicts, tuples, sets and odd objects -> plain JSON values; NaN/inf -> None."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= _JSON_DEPTH:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [json_safe(v, depth + 1) for v in items]
    return str(value)


def event_payload(event: str, payload: Any, now: float, source: str = "octoprint") -> PrinterEvent:
    """OctoPrint's payload is a dict or None; anything else is wrapped as ``{"value": ...}``."""
    body = json_safe(payload)
    if body is not None and not isinstance(body, dict):
        body = {"value": body}
    return PrinterEvent(ts=now, source="printmesh" if source == "printmesh" else "octoprint", event=event, payload=body)
