"""Named queries of the workers table."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Job, Worker


async def insert_unless_name_taken(session: AsyncSession, worker: Worker) -> bool:
    """Insert ``worker`` in a savepoint; ``False`` (and nothing inserted) if its name is already taken."""
    try:
        async with session.begin_nested():
            session.add(worker)
    except IntegrityError:
        return False
    return True


async def has_jobs_in_progress(session: AsyncSession, worker_id: str) -> bool:
    """Whether the worker holds a job that is still processing."""
    found = await session.scalar(select(Job.id).where(Job.worker_id == worker_id, Job.state == "processing").limit(1))
    return found is not None
