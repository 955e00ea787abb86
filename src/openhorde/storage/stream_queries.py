"""Queries of the request event stream."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Job


async def jobs_of_request(session: AsyncSession, request_id: str) -> Sequence[Job]:
    """Every job of a request, in hand-out order (``started_at``, then id); locks nothing."""
    result = await session.scalars(select(Job).where(Job.request_id == request_id).order_by(Job.started_at, Job.id))
    return result.all()
