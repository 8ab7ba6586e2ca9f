"""The request/response envelope shared by every command family."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from printmesh_core.models.base import PART, Payload

ID_MAX = 128


class CommandRequest(BaseModel):
    """Base of every command request. ``id`` is chosen by the requester and echoed back."""

    model_config = PART

    id: str = Field(min_length=1, max_length=ID_MAX, description="Requester-chosen id, echoed in the response.")


class ErrorInfo(BaseModel):
    model_config = PART

    code: str = Field(description="Machine-readable: invalid_json, invalid_request, unknown_command, failed, ...")
    message: str
    details: list[dict[str, Any]] | None = None


class CommandResponse(Payload):
    """``{id, ok, data, error}``: exactly one of ``data`` (when ok) or ``error`` is meaningful."""

    id: str | None
    ok: bool
    data: dict[str, Any] | None = None
    error: ErrorInfo | None = None
