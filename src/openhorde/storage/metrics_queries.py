"""The figures ``/metrics`` computes at scrape time: queue depth per model, live workers, open jobs."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage import queue_queries
from openhorde.storage.tables import Job, Request, RequestModel, Worker

ANY_MODEL = "any"
"""The ``model`` label of requests that name no model (any worker may serve them)."""

_QUEUE_DEPTH = (
    select(RequestModel.model, func.coalesce(func.sum(Request.n_waiting), 0))
    .select_from(Request)
    .outerjoin(RequestModel, RequestModel.request_id == Request.id)
    .where(queue_queries.queued_condition())
    .group_by(RequestModel.model)
)


async def queue_depth_by_model(session: AsyncSession) -> dict[str, int]:
    """Images waiting for a worker, per requested model (a request naming several counts under each)."""
    return {str(model or ANY_MODEL): int(waiting) for model, waiting in await session.execute(_QUEUE_DEPTH)}


async def workers_online(session: AsyncSession, live_since: float) -> int:
    """Workers that popped at or after ``live_since``."""
    count = await session.scalar(select(func.count()).select_from(Worker).where(Worker.last_check_in_at >= live_since))
    return int(count or 0)


async def jobs_processing(session: AsyncSession) -> int:
    """Jobs handed out and not yet submitted, faulted or expired."""
    count = await session.scalar(select(func.count()).select_from(Job).where(Job.state == queue_queries.PROCESSING))
    return int(count or 0)
