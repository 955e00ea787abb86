"""Named queries of the workers table."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Worker


async def insert_unless_name_taken(session: AsyncSession, worker: Worker) -> bool:
    """Insert ``worker`` in a savepoint; ``False`` (and nothing inserted) if its name is already taken."""
    try:
        async with session.begin_nested():
            session.add(worker)
    except IntegrityError:
        return False
    return True
