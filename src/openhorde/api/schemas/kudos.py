"""Bodies of ``/kudos/*``."""

from __future__ import annotations

from pydantic import Field

from openhorde.api.schemas.common import MAX_KUDOS_AMOUNT, ResponseModel, WireModel


class KudosTransferInput(WireModel):
    username: str = Field(min_length=3, max_length=100)
    amount: int = Field(default=100)


class KudosTransferred(ResponseModel):
    transferred: int


class KudosAwardInput(WireModel):
    username: str = Field(min_length=3, max_length=100)
    amount: int = Field(default=100, le=MAX_KUDOS_AMOUNT)


class KudosAwarded(ResponseModel):
    awarded: int


class KudosHistoryEntry(ResponseModel):
    id: int
    created_at: float
    kind: str
    memo: str
    amount: float


class KudosHistory(ResponseModel):
    entries: list[KudosHistoryEntry]
    page: int
    pages: int
    total: int
