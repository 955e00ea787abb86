"""Availability: could a live worker serve a request, the queue as live workers see it, and their capacity.

These reuse the pop's rules (``matching_queries.match_rules``) with the columns of the ``workers`` table in
place of a popping worker's declared capabilities. A live worker is one seen since the bound ``since`` and not
paused. They serve ``/generate/check`` and ``/generate/status`` through the queue snapshot each process keeps
(``domain/queue/availability.py``), so each is one statement, built once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    String,
    Table,
    and_,
    any_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.util import ClauseAdapter

from openhorde.storage.direct_sql import DirectSql
from openhorde.storage.matching_queries import match_conditions, queued_condition, worker_columns
from openhorde.storage.tables import Request, RequestModel, User, Worker, WorkerModel

_WORKERS = cast(Table, Worker.__table__)


def _live() -> ColumnElement[bool]:
    """An image worker (alchemists serve no image request) seen after the bound ``since`` and not paused."""
    return and_(Worker.last_check_in_at >= bindparam("since"), Worker.paused.is_(False), Worker.worker_type == "image")


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


# A worker row's blacklist and priority users are JSON lists; each engine reads them with its own function.
# ``{requests}``: the name the request's row goes by in the statement. Most workers have no blacklist: its length
# is read first, so that the subquery does not start for each of them (with 32 workers the subqueries were a
# fifth of PostgreSQL's CPU per job). The priority users are read only for a worker that wants upfront kudos.
_LIST_RULES = {
    True: (
        "EXISTS (SELECT 1 FROM json_each(workers.priority_user_ids) AS listed WHERE listed.value = {requests}.user_id)",
        "(json_array_length(workers.blacklist) > 0 AND EXISTS (SELECT 1 FROM json_each(workers.blacklist) AS word"
        " WHERE instr(lower({requests}.prompt), lower(word.value)) > 0))",
    ),
    False: (
        "EXISTS (SELECT 1 FROM json_array_elements_text(workers.priority_user_ids) AS listed"
        " WHERE CAST(listed AS BIGINT) = {requests}.user_id)",
        "(json_array_length(workers.blacklist) > 0 AND EXISTS (SELECT 1"
        " FROM json_array_elements_text(workers.blacklist) AS word"
        " WHERE strpos(lower({requests}.prompt), lower(word)) > 0))",
    ),
}


def _eligible(is_sqlite: bool, serves_a_model: ColumnElement[bool] | None = None, requests: str = "requests") -> Any:
    """Count, threads and speed of the live workers that pass every rule of the pop for one request: the
    ``workers`` columns with the owner's trust, priority users and blacklist read from their rows.
    ``serves_a_model``: how a worker is found to serve one of the request's models (by default its queue rows);
    ``requests``: the name of the request's row in the statement (by default the table's)."""
    prioritised, blacklisted = (rule.format(requests=requests) for rule in _LIST_RULES[is_sqlite])
    side = replace(
        worker_columns(),
        owner_trusted=User.is_trusted,
        prioritised=literal_column(prioritised, Boolean),
        blacklisted=literal_column(blacklisted, Boolean),
    )
    if serves_a_model is None:
        serves_a_model = (
            select(RequestModel.request_id)
            .join(WorkerModel, WorkerModel.model == RequestModel.model)
            .where(RequestModel.request_id == Request.id, WorkerModel.worker_id == Worker.id)
            .exists()
        )
    speed = func.coalesce(Worker.speed_pps, bindparam("default_speed", type_=Float))
    return select(
        func.count(Worker.id),
        func.coalesce(func.sum(Worker.threads), 0),
        func.coalesce(func.sum(speed * Worker.threads), 0.0),
    ).where(
        Request.id == bindparam("request_id"),
        User.id == Worker.user_id,
        _live(),
        or_(Request.has_model_list.is_(False), serves_a_model),
        *match_conditions(side),
    )


def eligible_for_new_request(new_request: Any) -> Any:
    """PostgreSQL: ``eligible`` for a request inserted by the same statement, whose row the statement sees only as
    ``new_request`` (a CTE returning every column of ``requests``) and whose models only as the bound array
    ``models`` (the queue rows inserted beside it are invisible to the statement, as the row is)."""
    models = bindparam("models", type_=ARRAY(String))
    serves_a_model = (
        select(WorkerModel.worker_id).where(WorkerModel.worker_id == Worker.id, WorkerModel.model == any_(models))
    ).exists()
    counted = _eligible(False, serves_a_model, requests=new_request.name)
    return ClauseAdapter(new_request).traverse(counted)


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The live workers that could serve a request now: how many, their threads, their total speed."""

    workers: int
    threads: int
    speed_pps: float
    """Pixel-steps per second of all their threads together."""


_ELIGIBLE = {True: _eligible(True), False: _eligible(False)}
_QUEUE_FOR_LIVE_WORKERS = _queue_for_live_workers()
_LIVE_CAPACITY = _live_capacity()


class AvailabilityRepository:
    """Whether live workers can serve requests, and how much they can do."""

    __slots__ = ("_session", "_sql", "_sqlite")

    def __init__(self, session: Callable[[], AsyncSession], sql: DirectSql, is_sqlite: bool) -> None:
        self._session = session
        """The unit of work's session, made on first use: counting a request's workers (a new request, a check)
        needs none."""
        self._sql = sql
        self._sqlite = is_sqlite

    async def eligible(self, request_id: str, since: float, default_speed_pps: float) -> Eligibility:
        """The workers seen after ``since`` that pass every rule of the pop for this request (``default_speed_pps``
        for a worker with no speed yet)."""
        values = {"request_id": request_id, "since": since, "default_speed": default_speed_pps}
        workers, threads, speed = await self._sql.one(_ELIGIBLE[self._sqlite], values)
        return Eligibility(int(workers), int(threads), float(speed))

    async def queue_for_live_workers(self, since: float) -> list[tuple[str, int, int]]:
        """``(id, images waiting, pixel-steps per image)`` of the queued requests, in hand-out order, that name a
        model some worker seen after ``since`` serves (or name none) and are no larger than the largest such
        worker takes.

        This is a cheap stand-in for "some live worker can serve it" (``eligible``, one request at a time): one
        primary-key probe per request rather than a search of the workers, because it reads the whole queue
        (100,000 requests: the exact test took seconds)."""
        rows = await self._session().execute(_QUEUE_FOR_LIVE_WORKERS, {"since": since})
        return [(str(a), int(b), int(c)) for a, b, c in rows]

    async def live_capacity(self, since: float, default_speed_pps: float) -> tuple[float, int]:
        """Total speed (pixel-steps per second, all threads; ``default_speed_pps`` for a worker with no speed yet)
        and thread count of the workers seen after ``since``."""
        values = {"since": since, "default_speed": default_speed_pps}
        speed, threads = (await self._session().execute(_LIVE_CAPACITY, values)).one()
        return float(speed), int(threads)
