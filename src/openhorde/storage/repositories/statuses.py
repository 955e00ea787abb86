"""What a request's status and its event stream read: its counters and its jobs.

``/generate/check`` and ``/generate/status`` are the hot reads of a client: a check reads the counters (one
primary-key lookup, and none while the process keeps them, ``domain/queue/availability.py``), a status reads
the counters and the finished jobs together (one indexed read). Nothing here locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Table, bindparam, literal_column, select

from openhorde.storage.direct_sql import DirectSql
from openhorde.storage.tables import Job, Request

_REQUESTS = cast(Table, Request.__table__)
_JOBS = cast(Table, Job.__table__)


@dataclass(frozen=True, slots=True)
class RequestCounters:
    """The columns of a request that its status needs (read without loading the whole row)."""

    id: str
    state: str
    n_waiting: int
    n_processing: int
    n_finished: int
    n_faulted: int
    things: int
    charged_cents: int
    shared: bool
    r2: bool
    fault_reason: str | None
    last_activity_at: float


@dataclass(frozen=True, slots=True)
class RequestJob:
    """One job of a request: who took it and, once it is done, its image."""

    id: str
    state: str
    worker_id: str | None
    """``None`` once the worker was deleted (``worker_name`` stays)."""
    worker_name: str
    model: str
    seed: int
    censored: bool
    image_key: str | None
    gen_metadata: tuple[dict[str, Any], ...]
    started_at: float
    finished_at: float | None


_COUNTERS = select(*(_REQUESTS.c[field.name] for field in fields(RequestCounters))).where(
    _REQUESTS.c.id == bindparam("request_id")
)
_JOB_COLUMNS = [_JOBS.c[field.name] for field in fields(RequestJob)]
_JOBS_OF = (
    select(*_JOB_COLUMNS).where(_JOBS.c.request_id == bindparam("request_id")).order_by(_JOBS.c.started_at, _JOBS.c.id)
)
_JOB_PREFIX = "job_"
_COUNTERS_WITH_FINISHED_JOBS = (
    select(
        *(_REQUESTS.c[field.name] for field in fields(RequestCounters)),
        *(column.label(_JOB_PREFIX + column.name) for column in _JOB_COLUMNS),
    )
    .select_from(
        _REQUESTS.outerjoin(_JOBS, (_JOBS.c.request_id == _REQUESTS.c.id) & (_JOBS.c.state == literal_column("'done'")))
    )
    .where(_REQUESTS.c.id == bindparam("request_id"))
    .order_by(_JOBS.c.finished_at)
)
"""A status's whole read: the request's counters on every row, one row per done job (one row with no job
columns while none is done)."""
_COUNTER_COUNT = len(fields(RequestCounters))


def _job(values: Sequence[Any]) -> RequestJob:
    """A job from its columns, in ``RequestJob``'s field order."""
    (id_, state, worker_id, worker_name, model, seed, censored, image_key, gen_metadata, started_at,
     finished_at) = values  # fmt: skip
    return RequestJob(
        id=id_,
        state=state,
        worker_id=worker_id,
        worker_name=worker_name,
        model=model,
        seed=int(seed),
        censored=bool(censored),
        image_key=image_key,
        gen_metadata=tuple(gen_metadata or ()),
        started_at=started_at,
        finished_at=finished_at,
    )


class StatusRepository:
    """Reads of a request's counters and jobs, for its status and its event stream."""

    __slots__ = ("_sql",)

    def __init__(self, sql: DirectSql) -> None:
        self._sql = sql

    async def counters(self, request_id: str) -> RequestCounters | None:
        """The status columns of one request (a primary-key lookup), or ``None``."""
        row = await self._sql.first(_COUNTERS, {"request_id": request_id})
        return RequestCounters(*row) if row is not None else None

    async def counters_and_finished_jobs(self, request_id: str) -> tuple[RequestCounters, list[RequestJob]] | None:
        """``counters`` and ``finished_jobs`` in one round trip (a status's whole read), or ``None``."""
        rows = await self._sql.rows(_COUNTERS_WITH_FINISHED_JOBS, {"request_id": request_id})
        if not rows:
            return None
        counters = RequestCounters(*rows[0][:_COUNTER_COUNT])
        jobs = [_job(row[_COUNTER_COUNT:]) for row in rows if row[_COUNTER_COUNT] is not None]
        return counters, jobs

    async def jobs(self, request_id: str) -> list[RequestJob]:
        """Every job of the request, in hand-out order (``started_at``, then id)."""
        return [_job(row) for row in await self._sql.rows(_JOBS_OF, {"request_id": request_id})]
