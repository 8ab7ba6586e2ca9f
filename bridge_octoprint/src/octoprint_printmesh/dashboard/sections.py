"""What the page receives: one compact JSON object per section, built from the model.

A section whose source is offline carries ``online: false`` and the time it went away,
and no values: the page can never show a stale number as a live one. Shell command
outputs are never in a section; the page fetches them through a permission-checked API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from octoprint_printmesh.dashboard.model import MeshModel, Presence
from printmesh_core import contract
from printmesh_core.models.host import HostState

Section = dict[str, Any]
DURATIONS_KEPT = 300  # layer durations sent for the graph (the most recent)


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def presence(*sources: Presence | None, fallback: float | None = None) -> Section:
    """Offline if any source is offline; since: when it went, else the last data time."""
    for source in sources:
        if source is not None and not source.online:
            return {"online": False, "since": source.since or fallback, "reason": source.reason}
    return {"online": True}


def host(model: MeshModel, node: str) -> Section:
    state = model.hosts.get(node)
    out: Section = {"node": node, "here": node == model.me}
    out.update(presence(model.source(node, contract.HOST), fallback=state.ts if state else None))
    if state is None or not out["online"]:
        return out
    return {**out, **host_values(state)}


def host_values(state: HostState) -> Section:
    storage = {mount: {"percent": _r(s.percent), "used": s.used, "total": s.total}
               for mount, s in (state.storage or {}).items()}  # fmt: skip
    return {
        "ts": state.ts,
        "cpu": _r(state.cpu.percent) if state.cpu else None,
        "load": [_r(state.load.load1, 2), _r(state.load.load5, 2), _r(state.load.load15, 2)] if state.load else None,
        "temperature": _r(state.temperature.celsius) if state.temperature else None,
        "frequency": _r(state.frequency.current_mhz, 0) if state.frequency else None,
        "memory": {"percent": _r(state.memory.percent), "used": state.memory.used, "total": state.memory.total}
        if state.memory
        else None,
        "storage": storage,
        "unavailable": sorted(state.unavailable),
    }


def sensor(model: MeshModel, node: str, name: str) -> Section:
    key = (node, name)
    reading, health = model.readings.get(key), model.health.get(key)
    out: Section = {"node": node, "name": name}
    out["location"] = reading.location if reading else health.location if health else None
    last = reading.ts if reading else None
    out.update(presence(model.source(node, contract.SENSORS), model.sensor_availability.get(key), fallback=last))
    if health is not None and health.status == "unavailable" and out["online"]:
        out.update({"online": False, "since": health.failing_since or last, "reason": "no good read"})
    if reading is None or not out["online"]:
        return out
    return {**out, "ts": reading.ts, "temperature": reading.temperature, "humidity": reading.humidity,
            "dew_point": reading.dew_point, "unit": reading.unit}  # fmt: skip


def camera(model: MeshModel, node: str, name: str, url: Callable[[str, str], str]) -> Section:
    cam = model.cameras.get((node, name))
    out: Section = {"node": node, "name": name}
    last = cam.last.timestamp if cam and cam.last else None
    out.update(presence(model.source(node, contract.CAMERA), cam.availability if cam else None, fallback=last))
    if cam is None or not out["online"]:
        return out
    preview = url(node, name) + f"?t={cam.preview_at}" if cam.preview_at is not None else None
    return {**out, "preview": preview, "preview_at": cam.preview_at}


def printer(model: MeshModel) -> Section:
    connection, state, profile = (model.printer.get(k) for k in ("connection", "state", "profile"))
    out: Section = {"node": model.me}
    out.update(presence(model.source(model.me, contract.PRINTER)))
    if not out["online"]:
        return out
    return {
        **out,
        "profile": profile.name if profile else None,
        "model": profile.model if profile else None,
        "connection": connection.state if connection else None,
        "port": connection.port if connection else None,
        "firmware": connection.firmware if connection else None,
        "state": state.text if state else None,
        "printing": bool(state and (state.flags.printing or state.flags.paused or state.flags.pausing)),
        "on_hold": bool(state and state.on_hold),
    }


def heat(model: MeshModel) -> Section:
    temps, fans, heating = (model.printer.get(k) for k in ("temperature", "fans", "heating"))
    out: Section = presence(model.source(model.me, contract.PRINTER))
    if not out["online"]:
        return out
    heaters = []
    if temps is not None:
        named = [*temps.tools.items(), ("bed", temps.bed), ("chamber", temps.chamber)]
        for name, heater in named:
            if heater is None or heater.actual is None:
                continue
            eta = heating.heaters.get(name) if heating else None
            heaters.append({"name": name, "actual": _r(heater.actual), "target": _r(heater.target),
                            "state": eta.state if eta else None,
                            "eta": _r(eta.eta, 0) if eta and eta.state == "heating" else None})  # fmt: skip
    speeds = {index: _r(fan.speed, 0) for index, fan in (fans.fans.items() if fans else ())}
    return {**out, "heaters": heaters, "fans": speeds}


def job(model: MeshModel) -> Section:
    job, layers, state = (model.printer.get(k) for k in ("job", "layer_progress", "state"))
    out: Section = presence(model.source(model.me, contract.PRINTER))
    if not out["online"]:
        return out
    if job is not None:
        out.update({"file": job.file_name, "progress": _r(job.progress), "print_time": job.print_time,
                    "time_left": job.print_time_left, "left_origin": job.print_time_left_origin,
                    "total": _r(job.estimated_total, 0), "eta": job.eta_unix, "started_at": job.started_at,
                    "since_start": _r(job.time_since_start, 0)})  # fmt: skip
    if layers is not None:
        out.update({"layer": layers.current, "layers": layers.total, "height": layers.current_height,
                    "total_height": layers.total_height, "average": _r(layers.average_duration),
                    "last": _r(layers.last_duration)})  # fmt: skip
    out["state"] = state.text if state else None
    return out


def layer_times(model: MeshModel) -> Section:
    """Durations of the finished layers, the first one's number, for the graph."""
    layers = model.printer.get("layer_progress")
    if layers is None:
        return {"durations": [], "first": 1}
    done = layers.durations
    first = max(1, (layers.current or len(done) + 1) - len(done))  # the layer of done[0]
    kept = done[-DURATIONS_KEPT:]
    return {"durations": [_r(d, 2) for d in kept], "first": first + len(done) - len(kept)}


def nodes(model: MeshModel) -> Section:
    return {f"{n}/{c}": {"online": p.online, "since": p.since, "version": model.versions.get((n, c))}
            for (n, c), p in sorted(model.presence.items())}  # fmt: skip


def shells(model: MeshModel) -> Section:
    """Only that outputs exist and when they last changed: the outputs go through the API."""
    return {"count": len(model.shells), "latest": max((s.ts for s in model.shells.values()), default=None)}
