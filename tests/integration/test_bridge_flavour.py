"""The firmware's flavour inside a real OctoPrint: its M115 report reaches the plugin's
``firmware.info`` hook, and a hold restores the extrusion mode that flavour leaves.

The file sets M83, then makes a relative hop (``G91 ... G90``) before layer 3. Klipper keeps
M83 through G90, so the release must send M83; Marlin's G90 makes E absolute, so it must
send M82. The virtual printer reports whatever ``firmwareName`` it is given.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Observer
from octoprint_harness import start_octoprint
from printing import FAST, hold_windows, sends

from printmesh_devkit.broker import LocalBroker

NODE = "octo5"
BASE = f"printmesh/{NODE}/printer"


def sliced() -> bytes:
    lines = ["G28", "G90", "M83", "G92 E0"]
    for n in range(1, 6):
        z = round(0.2 * n, 3)
        lines += [";LAYER_CHANGE", f";Z:{z}", ";HEIGHT:0.2", f"G1 Z{z} F600", "G1 X50 Y50 F6000"]
        lines += ["G1 X60 Y50 E0.4 F1500", "G1 X60 Y60 E0.4", "G1 X50 Y60 E0.4", "G1 X50 Y50 E0.4"]
        if n == 2:
            lines += [
                "M400",
                "G91",
                "G1 Z1 F600",
                "G1 Z-1 F600",
                "M400",
                "G90",
            ]  # a relative hop (M400: virtual printer quirk)
    return ("\n".join(lines) + "\n").encode()


def call(observer: Observer, name: str, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    request = {"id": uuid.uuid4().hex[:12], **body}
    mark = observer.mark()
    observer.publish(f"{BASE}/cmd/{name}", json.dumps(request))
    return observer.topic(
        f"{BASE}/res/{name}", after=mark, where=lambda d: d.get("id") == request["id"], timeout=timeout
    )


@pytest.mark.parametrize(("firmware", "restored"), [("Klipper", "M83"), ("Marlin 2.1.2", "M82")])
def test_hold_restores_the_extrusion_mode_of_the_reported_firmware(
    observer: Observer, broker: LocalBroker, tmp_path: Path, firmware: str, restored: str
) -> None:
    server = start_octoprint(
        tmp_path / "octoprint", {"node_id": NODE, "mqtt": {"host": "127.0.0.1", "port": broker.port}}
    )
    try:
        server.wait_operational()
        server.api("POST", "/api/settings", {"plugins": {"virtual_printer": {"firmwareName": firmware}}})
        server.api("POST", "/api/connection", {"command": "disconnect"})
        server.api("POST", "/api/connection", {"command": "connect", "port": "VIRTUAL", "baudrate": 115200})
        server.wait_operational()
        assert call(observer, "hold", {"layer": 3})["ok"]
        server.api("POST", "/api/printer/command", {"commands": FAST})
        mark = observer.mark()
        server.upload("flavour.gcode", sliced())
        held = observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "held", timeout=60)
        assert held["payload"]["layer"] == 3
        lifted = call(observer, "move", {"z": held["payload"]["origin"]["z"] + 5})  # a release restores modes only
        assert lifted["ok"], lifted["error"]  # after the head moved: something to come back from
        assert call(observer, "release", {})["ok"]
        observer.topic(f"{BASE}/event", after=mark, where=lambda d: d["event"] == "PrintDone", timeout=60)
        log = server.serial_log()
    finally:
        server.stop()
    assert f"FIRMWARE_NAME:{firmware}" in log
    sent = sends(log)
    start, end = hold_windows(sent)[-1]
    modes = [cmd for _, cmd in sent[start : end + 1] if cmd in ("M82", "M83")]
    assert modes == [restored], [cmd for _, cmd in sent[start : end + 1]]
