"""Named queries of the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import AuditEntry


async def insert_entry(session: AsyncSession, row: dict[str, Any]) -> None:
    """Append one entry."""
    await session.execute(insert(AuditEntry), [row])


async def page_of(session: AsyncSession, offset: int, limit: int) -> list[AuditEntry]:
    """Entries, newest first."""
    query = select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).offset(offset).limit(limit)
    return list(await session.scalars(query))


async def count(session: AsyncSession) -> int:
    """How many entries there are."""
    return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
