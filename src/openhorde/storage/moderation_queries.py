"""Named queries of moderation state: horde modes, prompt filters and worker messages."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import HordeModes, PromptFilter, Worker, WorkerMessage
from openhorde.storage.tables.moderation import HORDE_MODES_ROW_ID


async def read_modes(session: AsyncSession) -> HordeModes | None:
    """The modes row, if it was ever written."""
    return await session.scalar(select(HordeModes).where(HordeModes.id == HORDE_MODES_ROW_ID))


async def modes_for_update(session: AsyncSession, now: float) -> HordeModes:
    """The modes row, locked for this transaction on PostgreSQL; created with every mode off if missing."""
    query = select(HordeModes).where(HordeModes.id == HORDE_MODES_ROW_ID).with_for_update()
    row = await session.scalar(query)
    if row is None:
        await session.execute(
            insert(HordeModes),
            [
                {
                    "id": HORDE_MODES_ROW_ID,
                    "maintenance": False,
                    "invite_only": False,
                    "raid": False,
                    "filters_version": 0,
                    "updated_at": now,
                }
            ],
        )
        row = await session.scalar(query)
        assert row is not None
    return row


async def bump_filters_version(session: AsyncSession, now: float) -> None:
    """Tell every process its compiled filters are stale."""
    row = await modes_for_update(session, now)
    await session.execute(
        update(HordeModes)
        .where(HordeModes.id == row.id)
        .values(filters_version=HordeModes.filters_version + 1, updated_at=now)
    )


async def all_filters(session: AsyncSession) -> list[PromptFilter]:
    """Every filter, oldest change first (the order replacements apply in)."""
    return list(await session.scalars(select(PromptFilter).order_by(PromptFilter.updated_at, PromptFilter.id)))


async def find_filters(session: AsyncSession, filter_type: int | None, contains: str | None) -> list[PromptFilter]:
    """Filters of one type and/or whose regex or description contains a word."""
    query = select(PromptFilter).order_by(PromptFilter.filter_type, PromptFilter.updated_at, PromptFilter.id)
    if filter_type is not None:
        query = query.where(PromptFilter.filter_type == filter_type)
    if contains:
        pattern = f"%{contains.lower()}%"
        query = query.where(
            func.lower(PromptFilter.regex).like(pattern) | func.lower(PromptFilter.description).like(pattern)
        )
    return list(await session.scalars(query))


async def count_workers(session: AsyncSession, user_id: int) -> int:
    """How many workers an account has."""
    return int(await session.scalar(select(func.count()).select_from(Worker).where(Worker.user_id == user_id)) or 0)


async def active_messages_for_worker_name(session: AsyncSession, name: str, now: float) -> list[WorkerMessage]:
    """Unexpired messages to the worker of this name (unique name index, then the messages' index)."""
    query = (
        select(WorkerMessage)
        .join(Worker, Worker.id == WorkerMessage.worker_id)
        .where(Worker.name == name, WorkerMessage.expires_at > now)
        .order_by(WorkerMessage.created_at, WorkerMessage.id)
    )
    return list(await session.scalars(query))


async def find_messages(
    session: AsyncSession,
    owner_id: int | None,
    worker_id: str | None,
    validity: str,
    now: float,
    offset: int,
    limit: int,
) -> list[tuple[WorkerMessage, int]]:
    """Messages with their worker's owner id, newest first, filtered by owner, worker and validity."""
    query = select(WorkerMessage, Worker.user_id).join(Worker, Worker.id == WorkerMessage.worker_id)
    if owner_id is not None:
        query = query.where(Worker.user_id == owner_id)
    if worker_id is not None:
        query = query.where(WorkerMessage.worker_id == worker_id)
    if validity == "active":
        query = query.where(WorkerMessage.expires_at > now)
    elif validity == "expired":
        query = query.where(WorkerMessage.expires_at <= now)
    query = query.order_by(WorkerMessage.created_at.desc(), WorkerMessage.id).offset(offset).limit(limit)
    return [(message, owner) for message, owner in (await session.execute(query)).all()]
