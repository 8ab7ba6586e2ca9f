"""Entry point registered under ``printmesh.components``."""

from printmesh_core.agent import ComponentSpec
from printmesh_sensors.agent import SensorsAgent
from printmesh_sensors.config import SensorsSettings

COMPONENT = ComponentSpec(
    name="sensors",
    summary="DHT temperature and humidity sensors",
    settings=SensorsSettings,
    factory=SensorsAgent,
)
