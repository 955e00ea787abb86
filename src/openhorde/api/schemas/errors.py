"""The body of every error answer."""

from __future__ import annotations

from pydantic import ConfigDict

from openhorde.api.schemas.common import ResponseModel


class RequestError(ResponseModel):
    """``{"message", "rc"}``; a validation failure adds ``errors`` (field → problem)."""

    model_config = ConfigDict(extra="allow")

    message: str
    rc: str
    errors: dict[str, str] | None = None
