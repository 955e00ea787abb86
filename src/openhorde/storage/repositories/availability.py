"""Availability: could a live worker serve a request, the queue as live workers see it, and their capacity.

These reuse the pop's rules (``matching_queries.match_rules``) with the columns of the ``workers`` table in
place of a popping worker's declared capabilities. A live worker is one seen since the bound ``since`` and not
paused. They serve ``/generate/check`` and ``/generate/status`` through the queue snapshot each process keeps
(``domain/queue/availability.py``), so each is one statement, built once.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, Float, Table, and_, bindparam, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.matching_queries import match_conditions, queued_condition, worker_columns
from openhorde.storage.tables import Request, RequestModel, Worker, WorkerModel

_WORKERS = cast(Table, Worker.__table__)


def _live() -> ColumnElement[bool]:
    """An image worker (alchemists serve no image request) seen after the bound ``since`` and not paused."""
    return and_(Worker.last_check_in_at >= bindparam("since"), Worker.paused.is_(False), Worker.worker_type == "image")


def _live_worker_exists() -> ColumnElement[bool]:
    """EXISTS a worker seen after the bound ``since`` that can serve the (correlated) request.

    A request that names models reaches the workers through its models (``request_models`` →
    ``worker_models`` by model → ``workers``), so each request probes only the workers that serve
    one of its models, and stops at the first that passes every other rule, instead of testing
    every live worker in turn."""
    live = [_live(), *match_conditions(worker_columns())]
    through_models = (
        select(WorkerModel.worker_id)
        .join(RequestModel, RequestModel.model == WorkerModel.model)
        .join(Worker, Worker.id == WorkerModel.worker_id)
        .where(RequestModel.request_id == Request.id, *live)
        .exists()
    )
    any_model = and_(Request.has_model_list.is_(False), exists().where(*live))
    return or_(any_model, and_(Request.has_model_list.is_(True), through_models))


def _queue_for_live_workers() -> Any:
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


def _live_capacity() -> Any:
    speed = func.coalesce(_WORKERS.c.speed_pps, bindparam("default_speed", type_=Float))
    total = select(
        func.coalesce(func.sum(speed * _WORKERS.c.threads), 0.0), func.coalesce(func.sum(_WORKERS.c.threads), 0)
    )
    return total.where(_live())


_SERVABLE = select(_live_worker_exists()).where(Request.id == bindparam("request_id"))
_QUEUE_FOR_LIVE_WORKERS = _queue_for_live_workers()
_LIVE_CAPACITY = _live_capacity()


class AvailabilityRepository:
    """Whether live workers can serve requests, and how much they can do."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def servable(self, request_id: str, since: float) -> bool:
        """Whether a worker seen after ``since`` could serve this request."""
        values = {"request_id": request_id, "since": since}
        return bool((await self._session.execute(_SERVABLE, values)).scalar())

    async def queue_for_live_workers(self, since: float) -> list[tuple[str, int, int]]:
        """``(id, images waiting, pixel-steps per image)`` of the queued requests, in hand-out order, that name a
        model some worker seen after ``since`` serves (or name none) and are no larger than the largest such
        worker takes.

        This is a cheap stand-in for "some live worker can serve it" (``servable``, one request at a time): one
        primary-key probe per request rather than a search of the workers, because it reads the whole queue
        (100,000 requests: the exact test took seconds)."""
        rows = await self._session.execute(_QUEUE_FOR_LIVE_WORKERS, {"since": since})
        return [(str(a), int(b), int(c)) for a, b, c in rows]

    async def live_capacity(self, since: float, default_speed_pps: float) -> tuple[float, int]:
        """Total speed (pixel-steps per second, all threads; ``default_speed_pps`` for a worker with no speed yet)
        and thread count of the workers seen after ``since``."""
        values = {"since": since, "default_speed": default_speed_pps}
        speed, threads = (await self._session.execute(_LIVE_CAPACITY, values)).one()
        return float(speed), int(threads)
