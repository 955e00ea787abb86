"""Named queries of availability: could any live worker serve a request, the queue as live workers see it, and
their capacity.

They reuse the pop's rules (``matching_queries.match_rules``) with the columns of the
``workers`` table in place of a popping worker's declared capabilities.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.matching_queries import WorkerSide, match_conditions, worker_columns
from openhorde.storage.queue_queries import queued_condition
from openhorde.storage.tables import Request, RequestModel, Worker, WorkerModel


@lru_cache(maxsize=1)
def _live_worker_side() -> WorkerSide:
    return worker_columns()


def _live() -> ColumnElement[bool]:
    """A worker seen after the bound ``since`` and not paused."""
    return and_(Worker.last_check_in_at >= bindparam("since"), Worker.paused.is_(False))


def live_worker_exists() -> ColumnElement[bool]:
    """EXISTS a worker seen after the bound ``since`` that can serve the (correlated) request.

    A request that names models reaches the workers through its models (``request_models`` →
    ``worker_models`` by model → ``workers``), so each request probes only the workers that serve
    one of its models, and stops at the first that passes every other rule, instead of testing
    every live worker in turn."""
    live = [_live(), *match_conditions(_live_worker_side())]
    through_models = (
        select(WorkerModel.worker_id)
        .join(RequestModel, RequestModel.model == WorkerModel.model)
        .join(Worker, Worker.id == WorkerModel.worker_id)
        .where(RequestModel.request_id == Request.id, *live)
        .exists()
    )
    any_model = and_(Request.has_model_list.is_(False), exists().where(*live))
    return or_(any_model, and_(Request.has_model_list.is_(True), through_models))


@lru_cache(maxsize=1)
def _servable_request() -> Select[Any]:
    return select(live_worker_exists()).where(Request.id == bindparam("request_id"))


@lru_cache(maxsize=1)
def _queue_for_live_workers() -> Select[str, int, int]:
    live_models = select(WorkerModel.model).join(Worker, Worker.id == WorkerModel.worker_id).where(_live())
    largest = select(func.max(Worker.max_pixels)).where(_live()).scalar_subquery()
    named_model_is_live = (
        select(RequestModel.request_id)
        .where(RequestModel.request_id == Request.id, RequestModel.model.in_(live_models))
        .exists()
    )
    return (
        select(Request.id, Request.n_waiting, Request.things)
        .where(
            queued_condition(),
            Request.pixels <= largest,
            or_(Request.has_model_list.is_(False), named_model_is_live),
        )
        .order_by(Request.queue_rank.desc(), Request.id)
    )


async def request_is_servable(session: AsyncSession, request_id: str, since: float) -> bool:
    """Whether a worker seen after ``since`` could serve this request."""
    return bool(await session.scalar(_servable_request(), {"request_id": request_id, "since": since}))


async def queue_for_live_workers(session: AsyncSession, since: float) -> list[tuple[str, int, int]]:
    """``(id, images waiting, pixel-steps per image)`` of the queued requests, in hand-out order, that name a model
    some worker seen after ``since`` serves (or name none) and are no larger than the largest such worker takes.

    This is a cheap stand-in for "some live worker can serve it" (``request_is_servable``, one
    request at a time): one primary-key probe per request rather than a search of the workers,
    because it reads the whole queue (100,000 requests: the exact test took seconds)."""
    rows = await session.execute(_queue_for_live_workers(), {"since": since})
    return [(str(a), int(b), int(c)) for a, b, c in rows]


async def live_capacity(session: AsyncSession, since: float, default_speed_pps: float) -> tuple[float, int]:
    """Total speed (pixel-steps per second, all threads; ``default_speed_pps`` for a worker with no speed yet) and
    thread count of the workers seen after ``since``."""
    speed = func.coalesce(Worker.speed_pps, default_speed_pps)
    total = select(func.coalesce(func.sum(speed * Worker.threads), 0.0), func.coalesce(func.sum(Worker.threads), 0))
    row = (await session.execute(total.where(_live()), {"since": since})).one()
    return float(row[0]), int(row[1])
