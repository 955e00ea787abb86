"""``/kudos/*``: transfers and awards."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from openhorde.api.deps import ApiUser, SessionDep
from openhorde.api.schemas.kudos import KudosAwarded, KudosAwardInput, KudosTransferInput, KudosTransferred
from openhorde.domain.kudos import transfers

router = APIRouter(prefix="/kudos", tags=["kudos"])


@router.post("/transfer", response_model=KudosTransferred, summary="Give kudos to another user")
async def transfer(
    body: KudosTransferInput,
    session: SessionDep,
    user: ApiUser,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> KudosTransferred:
    moved = await transfers.transfer(session, user, body.username, body.amount, idempotency_key)
    return KudosTransferred(transferred=moved)


@router.post("/award", response_model=KudosAwarded, summary="Mint kudos for a user (admins)")
async def award(body: KudosAwardInput, session: SessionDep, user: ApiUser) -> KudosAwarded:
    return KudosAwarded(awarded=await transfers.award(session, user, body.username, body.amount))
