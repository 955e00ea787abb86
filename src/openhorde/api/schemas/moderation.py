"""Bodies of ``/filters``, ``PUT /status/modes`` and ``/workers/messages``."""

from __future__ import annotations

from pydantic import Field

from openhorde.api.schemas.common import ResponseModel, WireModel


class PutNewFilter(WireModel):
    regex: str = Field(min_length=1, max_length=5000)
    filter_type: int = Field(ge=10, le=29)
    description: str | None = Field(default=None, max_length=1000)
    replacement: str = Field(default="", max_length=1000)


class PatchExistingFilter(WireModel):
    regex: str | None = Field(default=None, min_length=1, max_length=5000)
    filter_type: int | None = Field(default=None, ge=10, le=29)
    description: str | None = Field(default=None, max_length=1000)
    replacement: str | None = Field(default=None, max_length=1000)


class FilterDetails(ResponseModel):
    id: str
    regex: str
    filter_type: int
    description: str | None = None
    replacement: str = ""
    user: str


class FilterCheckInput(WireModel):
    prompt: str = Field(max_length=100_000)
    filter_type: int | None = Field(default=None, ge=10, le=29)


class FilterPromptSuspicion(ResponseModel):
    suspicion: int
    matches: list[str]


class FilterRegex(ResponseModel):
    filter_type: int
    regex: str


class ModesInput(WireModel):
    maintenance: bool | None = None
    invite_only: bool | None = None
    raid: bool | None = None


class WorkerMessageInput(WireModel):
    worker_id: str = Field(min_length=1, max_length=36)
    message: str = Field(min_length=1, max_length=10_000)
    expiry: int = Field(default=12, ge=1, le=720, description="Hours until the message expires.")
    origin: str | None = Field(default=None, max_length=100, description="Moderators only: who it is from.")


class WorkerMessageOut(ResponseModel):
    id: str
    worker_id: str
    user_id: int
    message: str
    origin: str
    expiry: int = Field(description="Whole hours until the message expires (0 once it has), as on the AI Horde.")


class SimpleResponse(ResponseModel):
    message: str = "OK"
