"""``/kudos/*``: transfers, awards, and the caller's history."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Header, Query

from openhorde.api.deps import ApiUser, StoreDep
from openhorde.api.openapi import errors
from openhorde.api.schemas.kudos import (
    KudosAwarded,
    KudosAwardInput,
    KudosHistory,
    KudosHistoryEntry,
    KudosTransferInput,
    KudosTransferred,
)
from openhorde.domain.kudos import history, transfers

router = APIRouter(prefix="/kudos", tags=["kudos"])


@router.post("/transfer", response_model=KudosTransferred, responses=errors(404), summary="Give kudos to another user")
async def transfer(
    body: KudosTransferInput,
    store: StoreDep,
    user: ApiUser,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> KudosTransferred:
    moved = await transfers.transfer(store, user, body.username, body.amount, idempotency_key)
    return KudosTransferred(transferred=moved)


@router.post("/award", response_model=KudosAwarded, responses=errors(404), summary="Mint kudos for a user (admins)")
async def award(body: KudosAwardInput, store: StoreDep, user: ApiUser) -> KudosAwarded:
    return KudosAwarded(awarded=await transfers.award(store, user, body.username, body.amount))


@router.get("/history", response_model=KudosHistory, summary="Your kudos transactions, newest first (OpenHorde)")
async def kudos_history(
    store: StoreDep, user: ApiUser, page: Annotated[int, Query(ge=1, le=100_000)] = 1
) -> KudosHistory:
    found = await history.history(store, user, page)
    return KudosHistory(
        entries=[KudosHistoryEntry(**asdict(entry)) for entry in found.items],
        page=found.page,
        pages=found.pages,
        total=found.total,
    )
