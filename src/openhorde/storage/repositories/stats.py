"""The stats repository: horde-wide figures for ``/status`` and ``/metrics`` (per-model workers and queue, load).

Each figure is one statement built once; several figures read together are scalar subqueries of one ``SELECT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Float, Table, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.matching_queries import queued_condition
from openhorde.storage.tables import InterrogationForm, Job, Request, RequestModel, Worker, WorkerModel

_JOBS = cast(Table, Job.__table__)
_REQUESTS = cast(Table, Request.__table__)
_REQUEST_MODELS = cast(Table, RequestModel.__table__)
_WORKERS = cast(Table, Worker.__table__)
_WORKER_MODELS = cast(Table, WorkerModel.__table__)
_FORMS = cast(Table, InterrogationForm.__table__)

ANY_MODEL = "any"
"""The ``model`` label, in ``queue_depth_by_model``, of requests that name no model (any worker may serve them)."""
_PROCESSING: Any = literal_column("'processing'")
_DONE: Any = literal_column("'done'")


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model's live workers: their threads and mean speed (pixel-steps per second)."""

    threads: int
    speed_pps: float


@dataclass(frozen=True, slots=True)
class QueuedModel:
    """A model's queue: images waiting and their pixel-steps."""

    images: int
    things: int


@dataclass(frozen=True, slots=True)
class Load:
    """The horde's load: the queue, the live workers and the work done recently."""

    queued_requests: int
    queued_images: int
    queued_things: int
    worker_count: int
    thread_count: int
    done_things: int
    queued_forms: int = 0
    interrogator_count: int = 0
    interrogator_thread_count: int = 0


@dataclass(frozen=True, slots=True)
class Gauges:
    """What ``/metrics`` reads at scrape time besides the queue depth."""

    workers_online: int
    jobs_processing: int


_SERVED = (
    select(
        _WORKER_MODELS.c.model,
        func.sum(_WORKERS.c.threads),
        func.avg(func.coalesce(_WORKERS.c.speed_pps, bindparam("default_speed", type_=Float))),
    )
    .select_from(_WORKER_MODELS.join(_WORKERS, _WORKERS.c.id == _WORKER_MODELS.c.worker_id))
    .where(_WORKERS.c.last_check_in_at >= bindparam("since"), _WORKERS.c.paused.is_(False))
    .group_by(_WORKER_MODELS.c.model)
)
_QUEUED = (
    select(
        _REQUEST_MODELS.c.model,
        func.sum(_REQUESTS.c.n_waiting),
        func.sum(_REQUESTS.c.n_waiting * _REQUESTS.c.things),
    )
    .select_from(_REQUEST_MODELS.join(_REQUESTS, _REQUESTS.c.id == _REQUEST_MODELS.c.request_id))
    .where(queued_condition())
    .group_by(_REQUEST_MODELS.c.model)
)


def _load() -> Any:
    queue = select(
        func.count().label("queued_requests"),
        func.coalesce(func.sum(_REQUESTS.c.n_waiting), 0).label("queued_images"),
        func.coalesce(func.sum(_REQUESTS.c.n_waiting * _REQUESTS.c.things), 0).label("queued_things"),
    ).where(queued_condition())
    live = _WORKERS.c.last_check_in_at >= bindparam("since")
    image_live = live & (_WORKERS.c.worker_type == literal_column("'image'"))
    alchemist_live = live & (_WORKERS.c.worker_type == literal_column("'interrogation'"))
    done = (
        select(func.coalesce(func.sum(_REQUESTS.c.things), 0))
        .select_from(_JOBS.join(_REQUESTS, _REQUESTS.c.id == _JOBS.c.request_id))
        .where(_JOBS.c.state == _DONE, _JOBS.c.finished_at >= bindparam("done_since"))
    )
    queued = queue.subquery()
    return select(
        queued.c.queued_requests,
        queued.c.queued_images,
        queued.c.queued_things,
        select(func.count()).select_from(_WORKERS).where(image_live).scalar_subquery().label("worker_count"),
        select(func.coalesce(func.sum(_WORKERS.c.threads), 0))
        .where(image_live)
        .scalar_subquery()
        .label("thread_count"),
        done.scalar_subquery().label("done_things"),
        select(func.count())
        .select_from(_FORMS)
        .where(_FORMS.c.state == literal_column("'waiting'"))
        .scalar_subquery()
        .label("queued_forms"),
        select(func.count()).select_from(_WORKERS).where(alchemist_live).scalar_subquery().label("interrogator_count"),
        select(func.coalesce(func.sum(_WORKERS.c.threads), 0))
        .where(alchemist_live)
        .scalar_subquery()
        .label("interrogator_thread_count"),
    ).select_from(queued)


_LOAD = _load()
_QUEUE_DEPTH = (
    select(_REQUEST_MODELS.c.model, func.coalesce(func.sum(_REQUESTS.c.n_waiting), 0))
    .select_from(_REQUESTS.outerjoin(_REQUEST_MODELS, _REQUEST_MODELS.c.request_id == _REQUESTS.c.id))
    .where(queued_condition())
    .group_by(_REQUEST_MODELS.c.model)
)
_GAUGES = select(
    select(func.count())
    .select_from(_WORKERS)
    .where(_WORKERS.c.last_check_in_at >= bindparam("since"))
    .scalar_subquery()
    .label("workers_online"),
    select(func.count())
    .select_from(_JOBS)
    .where(_JOBS.c.state == _PROCESSING)
    .scalar_subquery()
    .label("jobs_processing"),
)


class StatsRepository:
    """Horde-wide figures, read (never written)."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def served_models(self, since: float, default_speed_pps: float) -> dict[str, ServedModel]:
        """Per model, the threads and mean speed (``default_speed_pps`` for a worker with none yet) of the unpaused
        workers seen at or after ``since`` that serve it."""
        rows = await self._session.execute(_SERVED, {"since": since, "default_speed": default_speed_pps})
        return {str(model): ServedModel(int(threads), float(speed)) for model, threads, speed in rows}

    async def queued_models(self) -> dict[str, QueuedModel]:
        """Per named model, the images waiting for a worker and their pixel-steps."""
        rows = await self._session.execute(_QUEUED)
        return {str(model): QueuedModel(int(images), int(things)) for model, images, things in rows}

    async def load(self, since: float, done_since: float) -> Load:
        """The queue, the workers seen at or after ``since``, and the pixel-steps of the images done since
        ``done_since``."""
        row = (await self._session.execute(_LOAD, {"since": since, "done_since": done_since})).one()
        return Load(**{name: int(value or 0) for name, value in row._mapping.items()})

    async def queue_depth_by_model(self) -> dict[str, int]:
        """Images waiting for a worker, per requested model (a request naming several counts under each)."""
        rows = await self._session.execute(_QUEUE_DEPTH)
        return {str(model or ANY_MODEL): int(waiting) for model, waiting in rows}

    async def gauges(self, since: float) -> Gauges:
        """Workers that popped at or after ``since``, and jobs handed out and not yet finished."""
        row = (await self._session.execute(_GAUGES, {"since": since})).one()
        return Gauges(int(row.workers_online or 0), int(row.jobs_processing or 0))
