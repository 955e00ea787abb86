"""Bodies of ``/operations/*``: the AI Horde's ``AddTimeoutIPInput``, ``DeleteTimeoutIPInput``, ``AddWorkerTimeout``."""

from __future__ import annotations

from pydantic import Field

from openhorde.api.schemas.common import ResponseModel, WireModel
from openhorde.domain.ip_timeouts import MAX_BLOCK_DAYS, MAX_TIMEOUT_HOURS


class AddTimeoutIPInput(WireModel):
    ipaddr: str = Field(min_length=3, max_length=45, description="The IP address to time out.")
    hours: int = Field(ge=1, le=MAX_TIMEOUT_HOURS, description="For how many hours.")


class DeleteTimeoutIPInput(WireModel):
    ipaddr: str = Field(min_length=3, max_length=45, description="The IP address to remove from timeout.")


class AddWorkerTimeout(WireModel):
    days: int = Field(ge=1, le=MAX_BLOCK_DAYS, description="For how many days to block the worker's address.")


class IPTimeoutOut(ResponseModel):
    ipaddr: str
    seconds: int


class SimpleResponse(ResponseModel):
    message: str = "OK"
