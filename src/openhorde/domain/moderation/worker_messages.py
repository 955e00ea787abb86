"""Messages to workers (``/workers/messages``): shown in every pop's ``messages`` until they expire.

A worker's owner may message their own workers; moderators may message any worker and set the ``origin``
(others' messages carry the sender's ``name#id``). Moderators' messages and deletions are audit-logged.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain import audit
from openhorde.domain.moderation.modes import is_moderator
from openhorde.errors import Forbidden, WorkerMessageNotFound, WorkerNotFound
from openhorde.storage import moderation_queries
from openhorde.storage.tables import User, Worker, WorkerMessage

MAX_EXPIRY_HOURS = 720
DEFAULT_EXPIRY_HOURS = 12
PAGE_SIZE = 50


@dataclass(frozen=True)
class MessageView:
    """A message as the API shows it, with its worker's owner."""

    id: str
    worker_id: str
    user_id: int
    message: str
    origin: str
    created_at: float
    expires_at: float


def _view(row: WorkerMessage, owner_id: int) -> MessageView:
    return MessageView(row.id, row.worker_id, owner_id, row.message, row.origin, row.created_at, row.expires_at)


def _may_manage(actor: User, owner_id: int) -> bool:
    return is_moderator(actor) or actor.id == owner_id


async def send(
    session: AsyncSession,
    actor: User,
    worker_id: str,
    message: str,
    expiry_hours: int = DEFAULT_EXPIRY_HOURS,
    origin: str | None = None,
    now: float | None = None,
) -> MessageView:
    """Leave a message for a worker (its owner or a moderator)."""
    moment = now or time.time()
    worker = await session.get(Worker, worker_id)
    if worker is None:
        raise WorkerNotFound(f"Worker with ID '{worker_id}' not found.")
    if not _may_manage(actor, worker.user_id):
        raise Forbidden("You can only send messages to your own workers.", rc="MessagesOnlyOwnWorkers")
    row = WorkerMessage(
        id=str(uuid.uuid4()),
        worker_id=worker.id,
        sender_id=actor.id,
        message=message,
        origin=(origin if origin and is_moderator(actor) else actor.display_name)[:100],
        created_at=moment,
        expires_at=moment + min(expiry_hours, MAX_EXPIRY_HOURS) * 3600,
    )
    session.add(row)
    await session.flush()
    if is_moderator(actor):
        details = {"worker_id": worker.id, "message": message, "expiry_hours": expiry_hours}
        await audit.record(session, actor, "worker_message.send", "worker_message", row.id, details, now=moment)
    return _view(row, worker.user_id)


async def list_messages(
    session: AsyncSession,
    actor: User,
    user_id: int | None = None,
    worker_id: str | None = None,
    validity: str = "active",
    page: int = 1,
    now: float | None = None,
) -> list[MessageView]:
    """A page of messages: moderators see all, others only those to their own workers."""
    owner = user_id if is_moderator(actor) else actor.id
    if not is_moderator(actor) and user_id is not None and user_id != actor.id:
        raise Forbidden("You can only see messages to your own workers.", rc="MessagesOnlyOwnWorkers")
    found = await moderation_queries.find_messages(
        session, owner, worker_id, validity, now or time.time(), (page - 1) * PAGE_SIZE, PAGE_SIZE
    )
    return [_view(row, owner_id) for row, owner_id in found]


async def _get(session: AsyncSession, actor: User, message_id: str) -> tuple[WorkerMessage, int]:
    row = await session.get(WorkerMessage, message_id)
    worker = await session.get(Worker, row.worker_id) if row is not None else None
    if row is None or worker is None or not _may_manage(actor, worker.user_id):
        raise WorkerMessageNotFound(f"Worker message with ID '{message_id}' not found.")
    return row, worker.user_id


async def get_message(session: AsyncSession, actor: User, message_id: str) -> MessageView:
    """One message (its worker's owner or a moderator)."""
    row, owner_id = await _get(session, actor, message_id)
    return _view(row, owner_id)


async def delete_message(session: AsyncSession, actor: User, message_id: str, now: float | None = None) -> None:
    """Withdraw a message (its worker's owner or a moderator)."""
    row, owner_id = await _get(session, actor, message_id)
    if is_moderator(actor) and actor.id != owner_id:
        details = {"worker_id": row.worker_id, "message": row.message}
        await audit.record(session, actor, "worker_message.delete", "worker_message", row.id, details, now=now)
    await session.delete(row)
    await session.flush()


async def for_pop(session: AsyncSession, worker_name: str, now: float | None = None) -> list[MessageView]:
    """The unexpired messages a popping worker is shown (one indexed query)."""
    rows = await moderation_queries.active_messages_for_worker_name(session, worker_name.strip(), now or time.time())
    return [_view(row, 0) for row in rows]
