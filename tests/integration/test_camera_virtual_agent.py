"""The real `printmesh camera` process with a virtual camera, against a real mosquitto: it follows the
printer's retained job and layer messages, published as the bridge publishes them, and its captures
show the part printed up to that layer."""

from __future__ import annotations

import json

from fakes.camera.helpers import capture, config, verify, wait_online
from virtual_camera_support import SAMPLE, centroid, part_area, part_mask

from printmesh_core.models.layers import LayerEvent
from printmesh_core.models.printer import LayerProgress, Point, PrinterHold, PrinterJob

PRINTER = "printmesh/printer1/printer"


def virtual_camera(files: str) -> dict[str, object]:
    source = {"type": "virtual", "printer": "printer1", "mount": "head", "files": files, "fps": 0}
    return {"name": "bed", "source": source, "width": 640, "height": 360, "preview": {"interval": 0}}


def test_virtual_camera_follows_the_bridge_topics(broker, observer, run_agent, tmp_path):
    uploads = tmp_path / "uploads"
    (uploads / "demo").mkdir(parents=True)
    (uploads / "demo" / "box.gcode").write_bytes(SAMPLE.read_bytes())
    # retained before the agent starts, as a bridge that has been running publishes them
    job = PrinterJob(file_name="box.gcode", file_path="demo/box.gcode", file_origin="local", started_at=1.0)
    observer.publish(f"{PRINTER}/job", job.to_json(), retain=True)
    observer.publish(f"{PRINTER}/layer_progress", LayerProgress(current=5, total=30).to_json(), retain=True)
    run_agent("camera", config(virtual_camera(str(uploads))))
    wait_online(observer)

    first = verify(capture(observer, id="layer-5"))[0]
    area5 = part_area(first)
    assert area5 > 500, "layers 1-5 are drawn"
    # the bridge's layer event, then its retained progress: the part grows
    event = LayerEvent(layer=20, z=4.0, file_pos=1, source="markers")
    observer.publish(f"{PRINTER}/layer", event.to_json())
    observer.publish(f"{PRINTER}/layer_progress", LayerProgress(current=20, total=30).to_json(), retain=True)
    area20 = 0
    for attempt in range(20):  # the agent sees the message a moment after we publish it
        area20 = part_area(verify(capture(observer, id=f"layer-20-{attempt}"))[0])
        if area20 > area5 * 1.05:
            break
    assert area20 > area5 * 1.05, (area5, area20)

    # held at layer 25 and moved to a grid point: the camera on the carriage sees the part from there
    origin = Point(x=100, y=100, z=5.0)
    hold = PrinterHold(phase="held", hold_id=1, layer=25, origin=origin).model_dump(mode="json")
    observer.publish(f"{PRINTER}/hold", json.dumps(hold), retain=True)
    observer.publish(f"{PRINTER}/layer_progress", LayerProgress(current=25, total=30).to_json(), retain=True)
    centre_x = centroid(part_mask(verify(capture(observer, id="held-origin"))[0]))[0]

    def part_x_after(publish: object, name: str, moved: object) -> float:
        assert callable(publish) and callable(moved)
        publish()
        x = 0.0
        for attempt in range(20):  # the agent sees the message a moment after we publish it
            x = centroid(part_mask(verify(capture(observer, id=f"{name}-{attempt}"))[0]))[0]
            if moved(x):
                break
        return x

    # today's bridge: the hold's "moved" event says where the head went
    moved = {"event": "moved", "source": "printmesh",
             "payload": {"hold_id": 1, "layer": 25, "position": {"x": 130, "y": 100, "z": 10}}}  # fmt: skip
    x = part_x_after(lambda: observer.publish(f"{PRINTER}/event", json.dumps(moved)), "moved",
                     lambda x: x < centre_x - 40)  # fmt: skip
    assert x < centre_x - 40, "the head moved right: the part moves left in the frame"
    # a bridge that reports hold.head (unknown fields are tolerated)
    busy = {**hold, "phase": "busy", "head": {"x": 70, "y": 100, "z": 10}, "future_field": True}
    x = part_x_after(lambda: observer.publish(f"{PRINTER}/hold", json.dumps(busy), retain=True), "head",
                     lambda x: x > centre_x + 40)  # fmt: skip
    assert x > centre_x + 40, "the head moved left: the part moves right in the frame"


def test_virtual_camera_refuses_a_job_file_outside_its_folder(broker, observer, run_agent, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (tmp_path / "outside.gcode").write_bytes(SAMPLE.read_bytes())
    job = PrinterJob(file_name="outside.gcode", file_path="../outside.gcode", file_origin="local")
    observer.publish(f"{PRINTER}/job", job.to_json(), retain=True)
    run_agent("camera", config(virtual_camera(str(uploads))))
    got = observer.topic("printmesh/camnode/camera/bed/availability", timeout=20,
                         where=lambda d: d["state"] == "offline" and "outside" in (d.get("reason") or ""))  # fmt: skip
    assert "refused" in got["reason"]
