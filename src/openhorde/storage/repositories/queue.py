"""The queue outside pop and submit: cancelling, faults, expired leases, time-outs, clean-up, the maintenance lock.

Every state change takes a ``lifecycle.Transition`` and is a conditional update (only jobs still processing,
only requests still queued), so overlapping maintenance passes or a fault racing a submit change a row once.
An ended request leaves the per-model queues (its ``request_models`` rows) in the same transaction; a request
whose image comes back marks its rows as waiting again (see ``RequestModel``).

The maintenance pass runs in one server process at a time: on PostgreSQL it holds a transaction-level advisory
lock (``try_maintenance_lock``), released when its transaction ends (commit, rollback or a lost connection), so
a crashed process never leaves it behind. SQLite serves one process: no lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.lifecycle import Transition
from openhorde.storage.tables import Job, Request, RequestModel, RequestWorker, Worker

_REQUESTS = cast(Table, Request.__table__)
_REQUEST_MODELS = cast(Table, RequestModel.__table__)
_REQUEST_WORKERS = cast(Table, RequestWorker.__table__)
_JOBS = cast(Table, Job.__table__)
_WORKERS = cast(Table, Worker.__table__)
# Literal constants, not bound parameters: PostgreSQL can then prove that a cached (generic) plan may use the
# partial indexes whose predicates name these states.
_QUEUED: Any = literal_column("'queued'")
_PROCESSING: Any = literal_column("'processing'")

MAINTENANCE_LOCK = 0x0_4F48_0001
"""Advisory lock key of the maintenance pass (lease expiry, queue time-outs, clean-up). "OH" + 1."""

QUEUE_TABLES = ("requests", "request_models")
"""The tables the pop's query plans are made from (``refresh_stale_statistics``)."""
STALE_MIN_CHANGES = 2_000
STALE_FRACTION = 0.5
"""A queue table's statistics are stale once this many rows, and this share of its rows, changed since its last
``ANALYZE``."""
STALE_MIN_AGE_SECONDS = 60
"""And they are at least this old (autovacuum's own pace): each refresh makes every pooled connection plan its
prepared statements again. Read from the table's last analysis, so every server process keeps to it."""
_STALE_TABLES = text(
    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ANY(:tables) "
    "AND n_mod_since_analyze > greatest(:min_changes, n_live_tup * :fraction) "
    "AND coalesce(greatest(last_analyze, last_autoanalyze), '-infinity') < now() - make_interval(secs => :min_age)"
)


@dataclass(frozen=True, slots=True)
class ExpiredJob:
    """A job whose lease ran out, just marked expired."""

    job_id: str
    request_id: str
    worker_id: str | None
    """``None`` once its worker was deleted."""


@dataclass(frozen=True, slots=True)
class JobHolder:
    """A job with its request and who holds it: what a worker's fault report is checked against."""

    job_id: str
    request_id: str
    state: str
    worker_id: str | None
    owner_id: int | None
    """The worker's owner; ``None`` once the worker was deleted."""


@dataclass(frozen=True, slots=True)
class RequestBlobs:
    """What some requests keep in the blob store: their source images and masks, and their jobs' images."""

    sources: tuple[str, ...]
    jobs: tuple[tuple[str, str | None], ...]
    """``(job id, delivered image key)`` of each job; its upload's key derives from its id."""


_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")
_OUTSTANDING = select(
    func.coalesce(func.sum((_REQUESTS.c.n_waiting + _REQUESTS.c.n_processing) * _REQUESTS.c.charge_cents), 0)
).where(_REQUESTS.c.state == _QUEUED, _REQUESTS.c.user_id == bindparam("user_id"))
_LEAVE_MODEL_QUEUES = delete(_REQUEST_MODELS).where(
    _REQUEST_MODELS.c.request_id.in_(bindparam("request_ids", expanding=True))
)
_WAITING_AGAIN = (
    update(_REQUEST_MODELS)
    .where(_REQUEST_MODELS.c.request_id == bindparam("of_request"), _REQUEST_MODELS.c.waiting.is_(False))
    .values(waiting=True)
)
_JOB_HOLDER = (
    select(_JOBS.c.id, _JOBS.c.request_id, _JOBS.c.state, _JOBS.c.worker_id, _WORKERS.c.user_id)
    .join_from(_JOBS, _WORKERS, _WORKERS.c.id == _JOBS.c.worker_id, isouter=True)
    .where(_JOBS.c.id == bindparam("job_id"))
)
_STALE_QUEUED = (
    select(_REQUESTS.c.id)
    .where(
        _REQUESTS.c.state == _QUEUED,
        _REQUESTS.c.n_processing == 0,
        _REQUESTS.c.last_activity_at < bindparam("idle_before"),
    )
    .limit(bindparam("limit"))
)
_ENDED_BEFORE = (
    select(_REQUESTS.c.id)
    .where(_REQUESTS.c.state != _QUEUED, _REQUESTS.c.last_activity_at < bindparam("before"))
    .order_by(_REQUESTS.c.last_activity_at)
    .limit(bindparam("limit"))
)
_SOURCE_KEYS = select(_REQUESTS.c.source_image_key, _REQUESTS.c.source_mask_key).where(
    _REQUESTS.c.id.in_(bindparam("request_ids", expanding=True))
)
_JOB_KEYS = select(_JOBS.c.id, _JOBS.c.image_key).where(
    _JOBS.c.request_id.in_(bindparam("request_ids", expanding=True))
)
_DELETE_REQUESTS = (
    *(
        delete(table).where(table.c.request_id.in_(bindparam("request_ids", expanding=True)))
        for table in (_JOBS, _REQUEST_MODELS, _REQUEST_WORKERS)
    ),
    delete(_REQUESTS).where(_REQUESTS.c.id.in_(bindparam("request_ids", expanding=True))),
)


@lru_cache(maxsize=4)
def _cancel_statement(cancelled: Transition) -> Any:
    """End a request as cancelled if its state allows it; returns its id when it did."""
    return (
        update(_REQUESTS)
        .where(_REQUESTS.c.id == bindparam("request_id"), _REQUESTS.c.state.in_(cancelled.sources))
        .values(state=cancelled.to, n_waiting=0, last_activity_at=bindparam("now"))
        .returning(_REQUESTS.c.id)
    )


@lru_cache(maxsize=4)
def _expire_statement(expired: Transition) -> Any:
    """Mark up to ``limit`` jobs past their deadline expired, the oldest deadline first; returns them."""
    due = (
        select(_JOBS.c.id)
        .where(_JOBS.c.state == _PROCESSING, _JOBS.c.deadline_at < bindparam("now"))
        .order_by(_JOBS.c.deadline_at)
        .limit(bindparam("limit"))
    )
    return (
        update(_JOBS)
        .where(_JOBS.c.id.in_(due.scalar_subquery()), _JOBS.c.state.in_(expired.sources))
        .values(state=expired.to, finished_at=bindparam("now"), fault_reason=bindparam("reason"))
        .returning(_JOBS.c.id, _JOBS.c.request_id, _JOBS.c.worker_id)
    )


@lru_cache(maxsize=4)
def _fault_job_statement(faulted: Transition) -> Any:
    """Mark a job faulted by its worker if its state allows it; returns its id when it did."""
    return (
        update(_JOBS)
        .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.state.in_(faulted.sources))
        .values(
            state=faulted.to,
            finished_at=bindparam("now"),
            fault_reason=bindparam("reason"),
            gen_metadata=bindparam("metadata", type_=_JOBS.c.gen_metadata.type),
        )
        .returning(_JOBS.c.id)
    )


# One faulted or expired image: counted, and waiting again while the request is queued and has faulted fewer
# than ``max_faulted`` times (the SET expressions read the row as it was before the update).
_IMAGE_BACK = (
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("request_id"))
    .values(
        n_processing=_REQUESTS.c.n_processing - 1,
        n_faulted=_REQUESTS.c.n_faulted + 1,
        n_waiting=case(
            (
                (_REQUESTS.c.state == _QUEUED) & (_REQUESTS.c.n_faulted + 1 < bindparam("max_faulted")),
                _REQUESTS.c.n_waiting + 1,
            ),
            else_=_REQUESTS.c.n_waiting,
        ),
        last_activity_at=bindparam("now"),
    )
    .returning(_REQUESTS.c.n_waiting)
)


@lru_cache(maxsize=4)
def _too_many_faults_statement(faulted: Transition) -> Any:
    """End a request faulted once ``max_faulted`` of its jobs faulted; returns its id when it did."""
    return (
        update(_REQUESTS)
        .where(
            _REQUESTS.c.id == bindparam("request_id"),
            _REQUESTS.c.state.in_(faulted.sources),
            _REQUESTS.c.n_faulted >= bindparam("max_faulted"),
        )
        .values(state=faulted.to, n_waiting=0, fault_reason=bindparam("reason"))
        .returning(_REQUESTS.c.id)
    )


@lru_cache(maxsize=4)
def _time_out_statement(faulted: Transition) -> Any:
    """End these requests faulted if their state allows it and none of their images is being generated."""
    return (
        update(_REQUESTS)
        .where(
            _REQUESTS.c.id.in_(bindparam("request_ids", expanding=True)),
            _REQUESTS.c.state.in_(faulted.sources),
            _REQUESTS.c.n_processing == 0,
        )
        .values(state=faulted.to, n_waiting=0, last_activity_at=bindparam("now"), fault_reason=bindparam("reason"))
        .returning(_REQUESTS.c.id)
    )


class QueueRepository:
    """Requests and jobs as cancels, faults and the maintenance pass change them."""

    __slots__ = ("_postgres", "_session")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._postgres = not is_sqlite

    async def try_maintenance_lock(self) -> bool:
        """Take the cluster's maintenance lock until this transaction ends; ``False`` if another process holds
        it (PostgreSQL). Always ``True`` on SQLite, which serves one process."""
        if not self._postgres:
            return True
        return bool((await self._session.execute(_TRY_LOCK, {"key": MAINTENANCE_LOCK})).scalar())

    async def refresh_stale_statistics(self) -> list[str]:
        """PostgreSQL: ``ANALYZE`` the queue's tables whose statistics are stale; returns their names.

        A queue that grew from a few rows to thousands within autovacuum's minute still has the statistics of a
        few rows, and the planner then joined the per-model queue to the whole queue row by row (seconds per
        pop at 5,000 queued). ``SKIP_LOCKED``: a table being analysed already is left alone."""
        if not self._postgres:
            return []
        values = {
            "tables": list(QUEUE_TABLES),
            "min_changes": STALE_MIN_CHANGES,
            "fraction": STALE_FRACTION,
            "min_age": STALE_MIN_AGE_SECONDS,
        }
        stale = {row[0] for row in await self._session.execute(_STALE_TABLES, values)}
        tables = [table for table in QUEUE_TABLES if table in stale]  # our own names, never the catalogue's text
        if tables:
            await self._session.execute(text(f"ANALYZE (SKIP_LOCKED) {', '.join(tables)}"))
        return tables

    async def outstanding_cents(self, user_id: int) -> int:
        """Hundredths of a kudo that a user's queued images (waiting or being generated) will still cost."""
        return int((await self._session.execute(_OUTSTANDING, {"user_id": user_id})).scalar_one())

    async def cancel(self, cancelled: Transition, request_id: str, now: float) -> bool:
        """End a request as cancelled (no more images handed out) and take it out of the per-model queues;
        ``False`` if its state does not allow it (any more)."""
        values = {"request_id": request_id, "now": now}
        if (await self._session.execute(_cancel_statement(cancelled), values)).first() is None:
            return False
        await self._leave_model_queues([request_id])
        return True

    async def expire_leases(self, expired: Transition, now: float, reason: str, limit: int) -> list[ExpiredJob]:
        """Mark up to ``limit`` jobs whose deadline passed before ``now`` as expired, with ``reason``."""
        values = {"now": now, "reason": reason, "limit": limit}
        rows = await self._session.execute(_expire_statement(expired), values)
        return [ExpiredJob(str(job_id), str(request_id), worker_id) for job_id, request_id, worker_id in rows]

    async def job_holder(self, job_id: str) -> JobHolder | None:
        """A job with its request, state, worker and the worker's owner; ``None`` if there is no such job."""
        row = (await self._session.execute(_JOB_HOLDER, {"job_id": job_id})).first()
        return JobHolder(*row) if row is not None else None

    async def fault_job(
        self, faulted: Transition, job_id: str, now: float, reason: str, gen_metadata: list[dict[str, Any]]
    ) -> bool:
        """Mark a job faulted by its worker, with the reason and the metadata it sent; ``False`` if its state
        does not allow it (any more: submitted, expired, faulted before)."""
        values = {"job_id": job_id, "now": now, "reason": reason, "metadata": gen_metadata}
        return (await self._session.execute(_fault_job_statement(faulted), values)).first() is not None

    async def return_image(
        self, faulted: Transition, request_id: str, now: float, max_faulted: int, reason: str
    ) -> bool:
        """Account for one faulted or expired job of a request: its image waits again, unless this was the
        request's ``max_faulted``-th fault, which ends it faulted with ``reason`` (returns ``True`` then)."""
        values = {"request_id": request_id, "now": now, "max_faulted": max_faulted}
        if (await self._session.execute(_IMAGE_BACK, values)).scalar():
            await self._session.execute(_WAITING_AGAIN, {"of_request": request_id})
        values["reason"] = reason
        if (await self._session.execute(_too_many_faults_statement(faulted), values)).first() is None:
            return False
        await self._leave_model_queues([request_id])
        return True

    async def time_out(self, faulted: Transition, idle_before: float, now: float, reason: str, limit: int) -> list[str]:
        """End up to ``limit`` queued requests with nothing in progress and no activity since ``idle_before`` as
        faulted, with ``reason``; returns the ids of those found."""
        stale = await self._session.execute(_STALE_QUEUED, {"idle_before": idle_before, "limit": limit})
        found = list(stale.scalars())
        if found:
            values = {"request_ids": found, "now": now, "reason": reason}
            faulted_ids = list((await self._session.execute(_time_out_statement(faulted), values)).scalars())
            await self._leave_model_queues(faulted_ids)
        return found

    async def ended_before(self, before: float, limit: int) -> list[str]:
        """Ids of up to ``limit`` ended requests whose last activity is older than ``before``, the oldest first."""
        return list((await self._session.execute(_ENDED_BEFORE, {"before": before, "limit": limit})).scalars())

    async def blobs_of(self, request_ids: Sequence[str]) -> RequestBlobs:
        """The blob keys these requests and their jobs use."""
        values = {"request_ids": list(request_ids)}
        sources = [key for row in await self._session.execute(_SOURCE_KEYS, values) for key in row if key]
        jobs = [(str(job_id), image_key) for job_id, image_key in await self._session.execute(_JOB_KEYS, values)]
        return RequestBlobs(tuple(sources), tuple(jobs))

    async def delete(self, request_ids: Sequence[str]) -> None:
        """Delete requests with their jobs and their model and worker lists."""
        values = {"request_ids": list(request_ids)}
        for statement in _DELETE_REQUESTS:
            await self._session.execute(statement, values)

    async def _leave_model_queues(self, request_ids: Sequence[str]) -> None:
        if request_ids:
            await self._session.execute(_LEAVE_MODEL_QUEUES, {"request_ids": list(request_ids)})
