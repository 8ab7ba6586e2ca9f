"""Payload models: the single definition shared by every publisher and subscriber."""

from printmesh_core.models.base import Payload, now
from printmesh_core.models.envelope import CommandRequest, CommandResponse, ErrorInfo
from printmesh_core.models.status import Availability, Status

__all__ = ["Availability", "CommandRequest", "CommandResponse", "ErrorInfo", "Payload", "Status", "now"]
