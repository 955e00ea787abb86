"""``/workers/messages``: messages to workers, shown on their pops (included before ``/workers/{id}``)."""

from __future__ import annotations

import math
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiUser, StoreDep
from openhorde.api.openapi import errors
from openhorde.api.schemas.moderation import SimpleResponse, WorkerMessageInput, WorkerMessageOut
from openhorde.domain.moderation import worker_messages
from openhorde.domain.moderation.worker_messages import MessageView

router = APIRouter(prefix="/workers/messages", tags=["workers"])


def hours_left(expires_at: float, now: float) -> int:
    """What the AI Horde's ``expiry`` says: the whole hours until the message expires (0 once it has)."""
    return max(0, math.ceil((expires_at - now) / 3600))


def _out(view: MessageView) -> WorkerMessageOut:
    return WorkerMessageOut(
        id=view.id,
        worker_id=view.worker_id,
        user_id=view.user_id,
        message=view.message,
        origin=view.origin,
        expiry=hours_left(view.expires_at, time.time()),
    )


@router.post("", response_model=WorkerMessageOut, responses=errors(404), summary="Message a worker")
async def send(body: WorkerMessageInput, store: StoreDep, user: ApiUser) -> WorkerMessageOut:
    view = await worker_messages.send(store, user, body.worker_id, body.message, body.expiry, body.origin)
    return _out(view)


@router.get("", response_model=list[WorkerMessageOut], summary="Messages to workers")
async def list_messages(
    store: StoreDep,
    user: ApiUser,
    user_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,  # a database integer
    worker_id: Annotated[str | None, Query(max_length=36)] = None,
    validity: Annotated[Literal["active", "expired", "all"], Query()] = "active",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> list[WorkerMessageOut]:
    found = await worker_messages.list_messages(store, user, user_id, worker_id, validity, page)
    return [_out(view) for view in found]


@router.get("/{message_id}", response_model=WorkerMessageOut, summary="One message to a worker")
async def get_message(message_id: str, store: StoreDep, user: ApiUser) -> WorkerMessageOut:
    return _out(await worker_messages.get_message(store, user, message_id))


@router.delete("/{message_id}", response_model=SimpleResponse, summary="Withdraw a message to a worker")
async def delete_message(message_id: str, store: StoreDep, user: ApiUser) -> SimpleResponse:
    await worker_messages.delete_message(store, user, message_id)
    return SimpleResponse(message="OK")
