"""Entry point registered under ``printmesh.components``.

Importing this must not import OpenCV: ``printmesh camera --check`` and ``--help`` work on
a machine where OpenCV is missing, and only a camera that actually runs needs it.
"""

from printmesh_camera.agent import CameraAgent
from printmesh_camera.config import CameraSettings
from printmesh_core.agent import ComponentSpec

COMPONENT = ComponentSpec(
    name="camera",
    summary="cameras: previews and captures on request",
    settings=CameraSettings,
    factory=CameraAgent,
)
