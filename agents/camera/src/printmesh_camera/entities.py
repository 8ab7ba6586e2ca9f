"""Home Assistant entities of one camera: the preview as a ``camera``, a capture ``button``,
and a ``sensor`` with the time of the last capture.

The camera entity reads the retained preview topic, raw JPEG bytes (so no
``image_encoding``); it exists only while previews are on. The button publishes its
``payload_press`` to ``<camera>/press``, which the agent turns into a capture request with
a new id every time: a constant id in ``payload_press`` would be swallowed by the command
server's de-duplication after the first press. Camera and button also follow the camera's
own availability; the last-capture sensor only the agent's, since the time of the last
capture stays true while the camera is unplugged.

Templates are null-safe: an empty or foreign message on the last-capture topic keeps the
current timestamp instead of making Home Assistant log a warning.
"""

from __future__ import annotations

from printmesh_camera.config import CameraConfig
from printmesh_core.discovery import Entity

LAST_CAPTURE_TEMPLATE = (
    "{% if value_json is mapping and value_json.timestamp is number %}"
    "{{ (value_json.timestamp | float) | timestamp_custom('%Y-%m-%dT%H:%M:%S.%f+00:00', false) }}"
    "{% elif this.state | as_datetime is not none %}{{ this.state }}"
    "{% else %}None{% endif %}"
)
ATTRIBUTES_TEMPLATE = "{{ value_json | tojson if value_json is mapping else '{}' }}"
PRESS_PAYLOAD = "PRESS"


def camera_entities(camera: CameraConfig, topic: dict[str, str]) -> list[Entity]:
    """``topic`` holds absolute topics: preview, press, availability, last_capture."""
    follow = (topic["availability"],)
    entities = []
    if camera.preview.interval > 0:
        entities.append(Entity("camera", camera.name, camera.display, {"topic": topic["preview"]}, follow))
    entities.append(
        Entity(
            "button",
            f"{camera.name}_capture",
            f"{camera.display} capture",
            {"command_topic": topic["press"], "payload_press": PRESS_PAYLOAD, "qos": 1, "retain": False,
             "icon": "mdi:camera-iris"},
            follow,
        )
    )  # fmt: skip
    entities.append(
        Entity(
            "sensor",
            f"{camera.name}_last_capture",
            f"{camera.display} last capture",
            {"state_topic": topic["last_capture"], "value_template": LAST_CAPTURE_TEMPLATE,
             "device_class": "timestamp", "json_attributes_topic": topic["last_capture"],
             "json_attributes_template": ATTRIBUTES_TEMPLATE, "icon": "mdi:camera-timer"},
        )
    )  # fmt: skip
    return entities
