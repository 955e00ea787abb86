"""Bodies of ``/operations/ipaddr`` (the AI Horde's ``AddTimeoutIPInput``, ``DeleteTimeoutIPInput``)."""

from __future__ import annotations

from pydantic import Field

from openhorde.api.schemas.common import ResponseModel, WireModel
from openhorde.domain.ip_timeouts import MAX_TIMEOUT_HOURS


class AddTimeoutIPInput(WireModel):
    ipaddr: str = Field(min_length=3, max_length=45, description="The IP address to time out.")
    hours: int = Field(ge=1, le=MAX_TIMEOUT_HOURS, description="For how many hours.")


class DeleteTimeoutIPInput(WireModel):
    ipaddr: str = Field(min_length=3, max_length=45, description="The IP address to remove from timeout.")


class IPTimeoutOut(ResponseModel):
    ipaddr: str
    seconds: int


class SimpleResponse(ResponseModel):
    message: str = "OK"
