"""Bodies of ``/sharedkeys``."""

from __future__ import annotations

from pydantic import Field

from openhorde.api.schemas.common import ResponseModel, WireModel
from openhorde.api.schemas.names import SharedKeyName


class SharedKeyInput(WireModel):
    """``SharedKeyInput``; on ``PUT /sharedkeys`` a missing field takes the reference's default."""

    kudos: int | None = Field(default=None, ge=-1, le=50_000_000)
    expiry: int | None = Field(default=None, ge=-1, le=36_500)
    name: SharedKeyName | None = None
    max_image_pixels: int | None = Field(default=None, ge=-1, le=4_194_304)
    max_image_steps: int | None = Field(default=None, ge=-1, le=500)
    max_text_tokens: int | None = Field(default=None, ge=-1, le=500)


class SharedKeyDetails(ResponseModel):
    id: str
    username: str
    name: str
    kudos: int
    expiry: str | None = None
    utilized: int
    max_image_pixels: int
    max_image_steps: int
    max_text_tokens: int


class SimpleResponse(ResponseModel):
    message: str = "OK"
