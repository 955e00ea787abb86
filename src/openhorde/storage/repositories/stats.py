"""The stats repository: horde-wide figures for ``/status``, ``/stats`` and ``/metrics``.

Each figure is one statement built once; several figures read together are scalar subqueries of one ``SELECT``.
The image counters of ``/stats/img/*`` (``image_stats``) are the one thing written here: added to in batches,
one statement for a whole batch of models and buckets.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Float, Table, and_, bindparam, delete, func, literal_column, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.matching_queries import queued_condition
from openhorde.storage.tables import ImageStat, InterrogationForm, Job, Request, RequestModel, Worker, WorkerModel

_JOBS = cast(Table, Job.__table__)
_REQUESTS = cast(Table, Request.__table__)
_REQUEST_MODELS = cast(Table, RequestModel.__table__)
_WORKERS = cast(Table, Worker.__table__)
_WORKER_MODELS = cast(Table, WorkerModel.__table__)
_IMAGE_STATS = cast(Table, ImageStat.__table__)
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


@dataclass(frozen=True, slots=True)
class ImageCount:
    """Images and their pixel-steps for one model in one bucket of ``span_seconds`` starting at ``bucket_start``
    (epoch seconds; span 0 and start 0 for all time)."""

    span_seconds: int
    bucket_start: int
    model: str
    images: int
    pixelsteps: int


def _add_image_counts(insert: Any) -> Any:
    """Add to a bucket's counters, creating its row on first use (one statement, race-free)."""
    statement = insert(_IMAGE_STATS).values(
        span_seconds=bindparam("span_seconds"),
        bucket_start=bindparam("bucket_start"),
        model=bindparam("model"),
        images=bindparam("images"),
        pixelsteps=bindparam("pixelsteps"),
    )
    return statement.on_conflict_do_update(
        index_elements=[_IMAGE_STATS.c.span_seconds, _IMAGE_STATS.c.bucket_start, _IMAGE_STATS.c.model],
        set_={
            "images": _IMAGE_STATS.c.images + statement.excluded.images,
            "pixelsteps": _IMAGE_STATS.c.pixelsteps + statement.excluded.pixelsteps,
        },
    )


_ADD_IMAGE_COUNTS = {True: _add_image_counts(sqlite.insert), False: _add_image_counts(postgresql.insert)}


def _in_windows(spans: tuple[int, ...], keep_all_time: bool) -> Any:
    """Rows of each span whose bucket starts after that span's ``after_<span>`` parameter (and the all-time rows)."""
    windows = [
        and_(_IMAGE_STATS.c.span_seconds == span, _IMAGE_STATS.c.bucket_start > bindparam(f"after_{span}"))
        for span in spans
    ]
    if keep_all_time:
        windows.append(_IMAGE_STATS.c.span_seconds == 0)
    return or_(*windows)


@functools.cache
def _image_counts(spans: tuple[int, ...], all_time: bool) -> Any:
    """Sums per span and model of the buckets in each span's window (built once per set of spans)."""
    return (
        select(
            _IMAGE_STATS.c.span_seconds,
            _IMAGE_STATS.c.model,
            func.sum(_IMAGE_STATS.c.images),
            func.sum(_IMAGE_STATS.c.pixelsteps),
        )
        .where(_in_windows(spans, all_time))
        .group_by(_IMAGE_STATS.c.span_seconds, _IMAGE_STATS.c.model)
    )


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
    """Horde-wide figures, and the image counters behind ``/stats/img/*``."""

    __slots__ = ("_is_sqlite", "_session")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._is_sqlite = is_sqlite

    async def add_image_counts(self, counts: list[ImageCount]) -> None:
        """Add images and pixel-steps to their buckets' counters: one statement for the whole list.

        Callers pass the rows in one order (sorted), so two processes adding at once lock them in the same order.
        """
        if counts:
            rows = [
                {
                    "span_seconds": c.span_seconds,
                    "bucket_start": c.bucket_start,
                    "model": c.model,
                    "images": c.images,
                    "pixelsteps": c.pixelsteps,
                }
                for c in counts
            ]
            await self._session.execute(_ADD_IMAGE_COUNTS[self._is_sqlite], rows)

    async def prune_image_counts(self, before: dict[int, int]) -> int:
        """Delete the buckets of each span (seconds) that start at or before ``before[span]``; how many went."""
        stale = or_(
            *(
                and_(_IMAGE_STATS.c.span_seconds == span, _IMAGE_STATS.c.bucket_start <= start)
                for span, start in sorted(before.items())
            )
        )
        result = await self._session.execute(delete(_IMAGE_STATS).where(stale))
        return int(cast(Any, result).rowcount or 0)

    async def image_counts(self, after: dict[int, int], all_time: bool) -> list[ImageCount]:
        """Per span and model, the images and pixel-steps of the buckets of each span (seconds) that start after
        ``after[span]``, and the all-time counters if ``all_time``. ``bucket_start`` is 0 in the answer."""
        statement = _image_counts(tuple(sorted(after)), all_time)
        rows = await self._session.execute(statement, {f"after_{span}": start for span, start in after.items()})
        return [ImageCount(int(span), 0, str(model), int(images), int(ps)) for span, model, images, ps in rows]

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
