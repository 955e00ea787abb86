"""Handing out jobs (``POST /generate/pop``); over 400 lines because PostgreSQL's one statement sits beside the two.

* ``find_and_take`` (PostgreSQL): both in one statement, which is its own transaction when the pop wrote nothing
  before it: the request is locked, its images counted out and its jobs inserted by data-modifying CTEs, with the
  batch size, the lease and the seeds computed in SQL from ``HandoutTerms`` (the rules of
  ``domain/queue/matching.py``, which computes them in Python for the two-statement path). A worker whose
  priority users make the find's SQL depend on their number takes the two statements below.
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

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by

from openhorde.storage.direct_sql import DirectSql
from openhorde.storage.matching_queries import (
    ONE,
    Skipped,
    WorkerSide,
    match_conditions,
    owner_or_priority,
    queued_condition,
    shape_and_params,
    skipped_query,
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


@dataclass(frozen=True, slots=True)
class HandoutTerms:
    """What a pop's one statement needs besides the worker's side: how to size the batch and the lease, and what
    to write in the jobs (the numbers of ``domain/queue/matching.py``'s rules)."""

    amount: int
    """Images the worker asked for (capped)."""
    batch_budget: float
    """Weighted pixels a batch may hold: the worker's max pixels / 3.5 × ``amount``."""
    post_processor_weight: float
    """Each post-processor adds this share of an image's pixels to its weight in a batch."""
    lease_fixed: int | None
    """The operator's fixed lease in seconds, or ``None`` for the formula."""
    lease_min: int
    lease_slow_factor: int
    """The formula's lease is multiplied by this (3 for an extra-slow worker, else 1)."""
    default_model: str | None
    """The model a request naming none is served with: the worker's first."""
    job_ids: tuple[str, ...]
    """Ids for the jobs, at least ``amount`` of them; the first ones taken are used."""
    worker_id: str
    worker_name: str
    now: float


@dataclass(frozen=True, slots=True)
class Taken:
    """What ``find_and_take`` handed out: the request and the jobs of its images."""

    request: Candidate
    model: str
    ttl: int
    jobs: tuple[NewJob, ...]


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


def _sized(picked: Any) -> Select[Any]:
    """The found request with its batch size, lease and model (``HandoutTerms`` as binds): the rules of
    ``domain/queue/matching.py``'s ``safe_amount``, ``job_ttl_seconds`` and ``pop``, in SQL."""
    c = picked.c
    post_processors = literal_column(
        "CASE WHEN json_typeof(picked.params -> 'post_processing') = 'array'"
        " THEN json_array_length(picked.params -> 'post_processing') ELSE 0 END",
        Integer,
    )
    weight = sql_cast(c.pixels, Float) * (1.0 + bindparam("post_processor_weight", type_=Float) * post_processors)
    fitting = sql_cast(func.round(bindparam("batch_budget", type_=Float) / weight), BigInteger)
    amount = bindparam("amount", type_=Integer)
    count = case((c.disable_batching, 1), else_=func.greatest(1, func.least(fitting, amount, c.n_waiting)))
    pixel_steps = sql_cast(sql_cast(c.accurate_steps, BigInteger) * 2 * c.pixels, Float)
    formula = 30.0 + pixel_steps / literal_column("CAST(262144 AS DOUBLE PRECISION)", Float)  # 512 × 512
    formula = formula * case((c.has_controlnet, 2.0), else_=1.0)
    formula = func.greatest(bindparam("lease_min", type_=Float), formula) * bindparam("lease_slow_factor", type_=Float)
    ttl = func.coalesce(bindparam("lease_fixed", type_=Integer), sql_cast(func.floor(formula), Integer))
    model = func.coalesce(c.model, bindparam("default_model", type_=String))
    return select(*c, count.label("n_jobs"), ttl.label("ttl"), model.label("job_model"))


_JOB_COLUMNS = [
    "id", "request_id", "worker_id", "worker_name", "model", "seed", "state", "started_at", "deadline_at", "censored",
    "gen_metadata", "reward_cents",
]  # fmt: skip


@lru_cache(maxsize=512)
def find_and_take_statement(shape: tuple[Any, ...]) -> Any:
    """The pop's one statement on PostgreSQL: find the request (locking it), size the batch and the lease, take its
    images and insert their jobs; it returns the request, the model, the lease and the jobs' ids and seeds."""
    sized = _sized(find_statement(shape, True).cte("picked")).cte("sized")
    s = sized.c
    taken = (
        update(_REQUESTS)
        .where(_REQUESTS.c.id == s.id)
        .values(
            n_waiting=_REQUESTS.c.n_waiting - s.n_jobs,
            n_processing=_REQUESTS.c.n_processing + s.n_jobs,
            last_activity_at=bindparam("now", type_=Float),
        )
        .returning(_REQUESTS.c.n_waiting)
        .cte("taken")
    )
    not_waiting = (
        update(_REQUEST_MODELS)
        .where(
            _REQUEST_MODELS.c.request_id == s.id,
            _REQUEST_MODELS.c.waiting,
            select(taken.c.n_waiting).where(taken.c.n_waiting == 0).exists(),
        )
        .values(waiting=False)
        .cte("not_waiting")
    )
    # The ids come as an array (the statement's text is the same for any amount); the first n_jobs are used.
    given = func.unnest(bindparam("job_ids", type_=ARRAY(String)))
    position = given.table_valued("id", with_ordinality="i").render_derived(name="position")
    index = s.n_total - s.n_waiting + position.c.i - 1
    seed = case(
        (s.seed.is_(None), sql_cast(func.floor(func.random() * 4294967296.0), BigInteger)),
        else_=(s.seed + sql_cast(s.seed_variation, BigInteger) * index) % 4294967296,
    )
    now = bindparam("now", type_=Float)
    new_jobs = (
        insert(_JOBS)
        .from_select(
            _JOB_COLUMNS,
            select(
                position.c.id,
                s.id,
                bindparam("of_worker", type_=String),
                bindparam("worker", type_=String),
                s.job_model,
                seed,
                literal("processing"),
                now,
                now + s.ttl,
                literal(False),
                literal_column("CAST('[]' AS JSON)"),
                literal(0),
            )
            .select_from(sized.join(position, true()))
            .where(position.c.i <= s.n_jobs),
        )
        .returning(_JOBS.c.id, _JOBS.c.seed)
        .cte("new_jobs")
    )
    ids = select(func.array_agg(aggregate_order_by(new_jobs.c.id, new_jobs.c.id))).scalar_subquery()
    seeds = select(func.array_agg(aggregate_order_by(new_jobs.c.seed, new_jobs.c.id))).scalar_subquery()
    candidate = [s[field.name] for field in fields(Candidate)]
    return select(*candidate, s.job_model, s.ttl, ids, seeds).add_cte(taken).add_cte(not_waiting)


class HandoutRepository:
    """Finding a worker's next request and handing out its images."""

    __slots__ = ("_postgres", "_sql")

    def __init__(self, sql: DirectSql, is_sqlite: bool) -> None:
        self._sql = sql
        self._postgres = not is_sqlite

    async def find(self, side: WorkerSide) -> Candidate | None:
        """The best queued request ``side`` can serve (locked on PostgreSQL until the transaction ends)."""
        shape, params = shape_and_params(side)
        row = await self._sql.first(find_statement(shape, self._postgres), params)
        return Candidate(*row) if row is not None else None

    def takes_in_one_statement(self, side: WorkerSide) -> bool:
        """Whether ``find_and_take`` serves this worker: on PostgreSQL, unless it has priority users (their ``IN``
        list makes the find's SQL depend on how many there are)."""
        return self._postgres and not side.priority_user_ids

    async def find_and_take(self, side: WorkerSide, terms: HandoutTerms) -> Taken | None:
        """Find the best queued request ``side`` can serve and hand its images out, in one statement (a transaction
        of its own unless the unit of work began one); ``None`` when nothing was found."""
        shape, params = shape_and_params(side)
        values = {
            **params,
            "amount": terms.amount,
            "batch_budget": terms.batch_budget,
            "post_processor_weight": terms.post_processor_weight,
            "lease_fixed": terms.lease_fixed,
            "lease_min": terms.lease_min,
            "lease_slow_factor": terms.lease_slow_factor,
            "default_model": terms.default_model,
            "job_ids": list(terms.job_ids),
            "of_worker": terms.worker_id,
            "worker": terms.worker_name,
            "now": terms.now,
        }
        row = await self._sql.first_alone(find_and_take_statement(shape), values)
        if row is None:
            return None
        *candidate, model, ttl, ids, seeds = row
        seed_of = dict(zip(ids, seeds, strict=True))
        jobs = tuple(NewJob(job_id, seed_of[job_id]) for job_id in terms.job_ids if job_id in seed_of)
        return Taken(Candidate(*candidate), model, ttl, jobs)

    async def skipped(self, side: WorkerSide) -> Skipped:
        """Why nothing was found for ``side``: the AI Horde's skip reasons, and whether a match was locked."""
        statement, values, skipped = skipped_query(side)
        row = await self._sql.first_alone(statement, values)  # a read: alone on PostgreSQL when nothing was taken
        assert row is not None  # an aggregate: always one row
        return skipped(row)

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
