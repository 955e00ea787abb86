"""Named queries of the workers table."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Job, Worker

# Matches the unique index on lower(name) (ix_workers_name_lower), so the lookup is an index probe.
_WORKER_BY_NAME_ANY_CASE = select(Worker).where(func.lower(Worker.name) == func.lower(bindparam("name")))


async def worker_by_name_any_case(session: AsyncSession, name: str) -> Worker | None:
    """The worker whose name equals ``name`` regardless of case (at most one: the index keeps them unique)."""
    return await session.scalar(_WORKER_BY_NAME_ANY_CASE, {"name": name})


async def insert_unless_name_taken(session: AsyncSession, worker: Worker) -> bool:
    """Insert ``worker`` in a savepoint; ``False`` (and nothing inserted) if its name is already taken, in any case."""
    try:
        async with session.begin_nested():
            session.add(worker)
    except IntegrityError:
        return False
    return True


async def rename_unless_name_taken(session: AsyncSession, worker: Worker, name: str) -> bool:
    """Rename ``worker`` in a savepoint; ``False`` (and the savepoint undone) if the name is taken, in any case."""
    try:
        async with session.begin_nested():
            worker.name = name
    except IntegrityError:
        return False
    return True


async def has_jobs_in_progress(session: AsyncSession, worker_id: str) -> bool:
    """Whether the worker holds a job that is still processing."""
    found = await session.scalar(select(Job.id).where(Job.worker_id == worker_id, Job.state == "processing").limit(1))
    return found is not None
