"""JSON Schemas for every payload, generated from the models into ``docs/schemas/``."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from printmesh_core.models import Availability, CommandResponse, Status
from printmesh_core.models.camera import CamerasRequest, CamerasResult, CaptureRequest, CaptureResult
from printmesh_core.models.coordinator import (
    AbortRequest,
    CoordinatorFleet,
    CoordinatorState,
    JobSummary,
    LayerCapture,
)
from printmesh_core.models.host import HostState, RefreshRequest, ShellResult
from printmesh_core.models.layers import LayerEvent, LayerOutlines, LayerTable
from printmesh_core.models.printer import (
    CancelRequest,
    GcodeRequest,
    HoldEnded,
    HoldRequest,
    LayerMissed,
    LayerProgress,
    MoveRequest,
    PauseRequest,
    PrinterConnection,
    PrinterEvent,
    PrinterFans,
    PrinterHeatingEta,
    PrinterHeld,
    PrinterHold,
    PrinterJob,
    PrinterProfile,
    PrinterState,
    PrinterTemperatures,
    ReleaseRequest,
    ResumeRequest,
)
from printmesh_core.models.sensors import ReadRequest, SensorHealth, SensorReading
from printmesh_core.models.watch import WatchVerdict

# name -> model; later components add their payloads here.
PAYLOADS: dict[str, type[BaseModel]] = {
    "status": Status,
    "availability": Availability,
    "command-response": CommandResponse,
    "host-state": HostState,
    "host-command-result": ShellResult,
    "host-refresh-request": RefreshRequest,
    "sensor-state": SensorReading,
    "sensor-health": SensorHealth,
    "sensor-read-request": ReadRequest,
    "camera-capture-request": CaptureRequest,
    "camera-capture-result": CaptureResult,
    "camera-cameras-request": CamerasRequest,
    "camera-cameras-result": CamerasResult,
    "layer-table": LayerTable,
    "layer-event": LayerEvent,
    "layer-outlines": LayerOutlines,
    "printer-connection": PrinterConnection,
    "printer-state": PrinterState,
    "printer-profile": PrinterProfile,
    "printer-temperature": PrinterTemperatures,
    "printer-fans": PrinterFans,
    "printer-heating": PrinterHeatingEta,
    "printer-job": PrinterJob,
    "printer-layer-progress": LayerProgress,
    "printer-hold": PrinterHold,
    "printer-event": PrinterEvent,
    "printer-held": PrinterHeld,
    "printer-released": HoldEnded,
    "printer-missed": LayerMissed,
    "printer-hold-request": HoldRequest,
    "printer-release-request": ReleaseRequest,
    "printer-pause-request": PauseRequest,
    "printer-resume-request": ResumeRequest,
    "printer-cancel-request": CancelRequest,
    "printer-move-request": MoveRequest,
    "printer-gcode-request": GcodeRequest,
    "coordinator-state": CoordinatorState,
    "coordinator-layer-capture": LayerCapture,
    "coordinator-job-summary": JobSummary,
    "coordinator-abort-request": AbortRequest,
    "coordinator-watch": WatchVerdict,
    "coordinator-fleet": CoordinatorFleet,
}


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in PAYLOADS.items():
        path = out / f"{name}.schema.json"
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
