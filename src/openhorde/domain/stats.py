"""Horde-wide figures: per-model workers and queue, and overall performance."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain.queue.availability import DEFAULT_WORKER_SPEED_PPS
from openhorde.domain.queue.states import JobState
from openhorde.storage import queue_queries
from openhorde.storage.tables import CatalogueModel, Job, Request, RequestModel, Worker, WorkerModel

PAST_MINUTE_SECONDS = 60


@dataclass(frozen=True)
class ModelStatus:
    """One model's live workers (threads), their mean speed, and its queue."""

    name: str
    count: int
    performance: float
    queued: int
    jobs: int
    eta: int


async def model_statuses(session: AsyncSession, live_since: float, state: str = "all") -> list[ModelStatus]:
    """Figures for every model that is served or queued (every catalogue model for ``state='known'``)."""
    served = {
        model: (int(threads), float(speed))
        for model, threads, speed in await session.execute(
            select(
                WorkerModel.model,
                func.sum(Worker.threads),
                func.avg(func.coalesce(Worker.speed_pps, DEFAULT_WORKER_SPEED_PPS)),
            )
            .join(Worker, Worker.id == WorkerModel.worker_id)
            .where(Worker.last_check_in_at >= live_since, Worker.paused.is_(False))
            .group_by(WorkerModel.model)
        )
    }
    queued = {
        model: (int(jobs), int(things))
        for model, jobs, things in await session.execute(
            select(RequestModel.model, func.sum(Request.n_waiting), func.sum(Request.n_waiting * Request.things))
            .join(Request, Request.id == RequestModel.request_id)
            .where(queue_queries.queued_condition())
            .group_by(RequestModel.model)
        )
    }
    known = set(await session.scalars(select(CatalogueModel.name)))
    if state == "known":
        names = known
    elif state == "custom":
        names = (set(served) | set(queued)) - known
    else:
        names = set(served) | set(queued)
    statuses = []
    for name in sorted(names):
        threads, speed = served.get(name, (0, 0.0))
        jobs, things = queued.get(name, (0, 0))
        eta = math.ceil(things / (speed * threads)) if threads and speed else 0
        statuses.append(ModelStatus(name=name, count=threads, performance=speed, queued=things, jobs=jobs, eta=eta))
    return statuses


@dataclass(frozen=True)
class Performance:
    """The horde's load right now."""

    queued_requests: int
    queued_images: int
    worker_count: int
    thread_count: int
    queued_megapixelsteps: float
    past_minute_megapixelsteps: float


async def performance(session: AsyncSession, live_since: float, now: float) -> Performance:
    """Queue size, live workers and the work done in the past minute."""
    requests, images, things = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(Request.n_waiting), 0),
                func.coalesce(func.sum(Request.n_waiting * Request.things), 0),
            ).where(queue_queries.queued_condition())
        )
    ).one()
    workers, threads = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Worker.threads), 0)).where(
                Worker.last_check_in_at >= live_since
            )
        )
    ).one()
    done_things = await session.scalar(
        select(func.coalesce(func.sum(Request.things), 0))
        .select_from(Job)
        .join(Request, Request.id == Job.request_id)
        .where(Job.state == JobState.DONE, Job.finished_at >= now - PAST_MINUTE_SECONDS)
    )
    return Performance(
        queued_requests=int(requests),
        queued_images=int(images),
        worker_count=int(workers),
        thread_count=int(threads),
        queued_megapixelsteps=round(int(things) / 1_000_000, 2),
        past_minute_megapixelsteps=round(int(done_things or 0) / 1_000_000, 2),
    )
