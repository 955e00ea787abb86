"""Handing out jobs (``POST /generate/pop``): find the best request a worker can serve, then take its images.

* ``find``: one statement. The owner's and priority users' requests come first (a short read by user), else
  the walk of the per-model queues (``matching_queries``); on PostgreSQL the row found is locked with
  ``FOR UPDATE SKIP LOCKED``, so two processes never take the same images. It returns the request with the
  first of the worker's models that the request accepts.
* ``take``: moves the images from waiting to processing, takes the request out of the per-model queues'
  index when none is left waiting, and inserts the jobs: one statement on PostgreSQL (data-modifying CTEs),
  three on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, case, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.direct_sql import DirectSql
from openhorde.storage.matching_queries import (
    ONE,
    Skipped,
    WorkerSide,
    count_skipped,
    match_conditions,
    owner_or_priority,
    queued_condition,
    shape_and_params,
    template,
    walk_model_queues,
)
from openhorde.storage.tables import Job, Request, RequestModel

_JOBS = cast(Table, Job.__table__)
_REQUESTS = cast(Table, Request.__table__)
_REQUEST_MODELS = cast(Table, RequestModel.__table__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A request a worker may take images of, with what handing them out needs."""

    id: str
    prompt: str
    params: dict[str, Any]
    n_total: int
    n_waiting: int
    pixels: int
    accurate_steps: int
    has_controlnet: bool
    disable_batching: bool
    seed: int | None
    seed_variation: int
    nsfw: bool
    censor_nsfw: bool
    source_processing: str
    source_image_key: str | None
    source_mask_key: str | None
    model: str | None
    """The first of the worker's models the request names; ``None`` when it names none (any model will do)."""


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job to insert: a worker's image of a request."""

    id: str
    seed: int


_CANDIDATE_COLUMNS = tuple(_REQUESTS.c[field.name] for field in fields(Candidate) if field.name != "model")
"""The request's columns of a ``Candidate``, in its field order (its last field, ``model``, is computed)."""


def _accepted_model(models: int) -> Any:
    """The first of the worker's models (bound as ``model_0``...) that the request names, in the worker's order."""
    if not models:
        return literal(None)
    order = case(*((RequestModel.model == bindparam(f"model_{i}"), i) for i in range(models)))
    return (
        select(RequestModel.model)
        .where(
            RequestModel.request_id == Request.id,
            RequestModel.model.in_([bindparam(f"model_{i}") for i in range(models)]),
        )
        .order_by(order)
        .limit(ONE)
        .scalar_subquery()
    )


def _priority_pick(w: WorkerSide, lock: bool) -> Any:
    """The id of the best request of the worker's owner or priority users it can serve."""
    query = (
        select(Request.id)
        .where(queued_condition(), *match_conditions(w), owner_or_priority(w))
        .order_by(Request.queue_rank.desc(), Request.id)
        .limit(ONE)
    )
    if lock:
        query = query.with_for_update(skip_locked=True, of=Request)
    return query.scalar_subquery()


@lru_cache(maxsize=512)
def find_statement(shape: tuple[Any, ...], lock: bool) -> Select[Any]:
    """The pop's one statement for workers of this shape (``shape_and_params``): the request it should serve."""
    side = template(shape)
    # COALESCE evaluates its second argument only when the first is NULL: the general walk (and its lock) runs
    # only when no owner's or priority user's request fits.
    picked = func.coalesce(_priority_pick(side, lock), walk_model_queues(side, lock))
    models = len(side.models or ())
    return select(*_CANDIDATE_COLUMNS, _accepted_model(models).label("model")).where(Request.id == picked)


_TAKEN = (
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("of_request"))
    .values(
        n_waiting=_REQUESTS.c.n_waiting - bindparam("count"),
        n_processing=_REQUESTS.c.n_processing + bindparam("count"),
        last_activity_at=bindparam("now"),
    )
    .returning(_REQUESTS.c.n_waiting)
)
_NOT_WAITING = (
    update(_REQUEST_MODELS)
    .where(_REQUEST_MODELS.c.request_id == bindparam("of_request"), _REQUEST_MODELS.c.waiting)
    .values(waiting=False)
)
_INSERT_JOB = insert(_JOBS).values(
    id=bindparam("job_id"),
    request_id=bindparam("of_request"),
    worker_id=bindparam("of_worker"),
    worker_name=bindparam("worker"),
    model=bindparam("job_model"),
    seed=bindparam("job_seed"),
    state="processing",
    started_at=bindparam("now"),
    deadline_at=bindparam("deadline"),
    censored=False,
    gen_metadata=[],
    reward_cents=0,
)
# PostgreSQL: all of it in one statement; the jobs come from arrays, so the text is the same for any count.
_TAKE_ALL = text(
    """WITH taken AS (
        UPDATE requests SET n_waiting = requests.n_waiting - CAST(:count AS INTEGER),
            n_processing = requests.n_processing + CAST(:count AS INTEGER),
            last_activity_at = CAST(:now AS DOUBLE PRECISION)
        WHERE requests.id = CAST(:of_request AS VARCHAR) RETURNING requests.n_waiting),
    not_waiting AS (
        UPDATE request_models SET waiting = false
        WHERE request_models.request_id = CAST(:of_request AS VARCHAR) AND request_models.waiting
            AND EXISTS (SELECT 1 FROM taken WHERE taken.n_waiting = 0)),
    new_jobs AS (
        INSERT INTO jobs (id, request_id, worker_id, worker_name, model, seed, state, started_at, deadline_at,
            censored, gen_metadata, reward_cents)
        SELECT j.id, CAST(:of_request AS VARCHAR), CAST(:of_worker AS VARCHAR), CAST(:worker AS VARCHAR),
            CAST(:job_model AS VARCHAR), j.seed, 'processing', CAST(:now AS DOUBLE PRECISION),
            CAST(:deadline AS DOUBLE PRECISION), false, CAST('[]' AS JSON), 0
        FROM unnest(CAST(:job_ids AS VARCHAR[]), CAST(:job_seeds AS BIGINT[])) AS j(id, seed))
    SELECT n_waiting FROM taken"""
)


class HandoutRepository:
    """Finding a worker's next request and handing out its images."""

    __slots__ = ("_postgres", "_session", "_sql")

    def __init__(self, session: AsyncSession, sql: DirectSql, is_sqlite: bool) -> None:
        self._session = session
        self._sql = sql
        self._postgres = not is_sqlite

    async def find(self, side: WorkerSide) -> Candidate | None:
        """The best queued request ``side`` can serve (locked on PostgreSQL until the transaction ends)."""
        shape, params = shape_and_params(side)
        row = await self._sql.first(find_statement(shape, self._postgres), params)
        return Candidate(*row) if row is not None else None

    async def skipped(self, side: WorkerSide) -> Skipped:
        """Why nothing was found for ``side``: the AI Horde's skip reasons, and whether a match was locked."""
        return await count_skipped(self._session, side)

    async def take(
        self,
        request_id: str,
        jobs: Sequence[NewJob],
        worker_id: str,
        worker_name: str,
        model: str,
        now: float,
        deadline: float,
    ) -> None:
        """Hand ``jobs`` (one per image) of a request to a worker."""
        # Bind names differ from column names: a key named like a column would join an UPDATE's SET.
        values = {
            "of_request": request_id,
            "of_worker": worker_id,
            "worker": worker_name,
            "job_model": model,
            "count": len(jobs),
            "now": now,
            "deadline": deadline,
        }
        if self._postgres:
            ids, seeds = [job.id for job in jobs], [job.seed for job in jobs]
            await self._sql.execute(_TAKE_ALL, {**values, "job_ids": ids, "job_seeds": seeds})
            return
        left = await self._sql.scalar(_TAKEN, values)
        if left == 0:
            await self._sql.execute(_NOT_WAITING, values)
        await self._sql.execute_many(_INSERT_JOB, [{**values, "job_id": job.id, "job_seed": job.seed} for job in jobs])
