"""Taking in a new request (``POST /generate/async``): the requester's standing, then the rows of the request.

* ``standing``: one statement counts the request in the requester's usage, which locks their row until the
  transaction ends (parallel requests of one user take turns), and returns their queue and their Supporter
  tier. On SQLite, whose one writer runs alone, that is all. On PostgreSQL a statement that waited for the lock
  still sees the data as it was when it began, so it also returns the usage count it saw before the lock next to
  the one it wrote: when they differ by more than this request, another request of theirs committed meanwhile,
  and a second statement, started after the lock was granted, reads the queue and the tier as they are now.
* ``insert``: the request and its per-model queue rows; on PostgreSQL one statement, which also counts the live
  workers that could serve it (for its first answer's warning and its first checks) unless it targets workers,
  whose rows take one more statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, func, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from openhorde.storage.direct_sql import DirectSql
from openhorde.storage.repositories.availability import Eligibility, eligible_for_new_request
from openhorde.storage.tables import Request, RequestModel, RequestWorker, Supporter, User

_USERS = cast(Table, User.__table__)
_REQUESTS = cast(Table, Request.__table__)
_REQUEST_MODELS = cast(Table, RequestModel.__table__)
_REQUEST_WORKERS = cast(Table, RequestWorker.__table__)
_SUPPORTERS = cast(Table, Supporter.__table__)
_QUEUED: Any = literal_column("'queued'")


@dataclass(frozen=True, slots=True)
class Standing:
    """A requester's balance, queue and tier when a new request of theirs arrives."""

    balance_cents: int
    queued_images: int
    """Images of their queued requests still waiting (for the anonymous account: every anonymous caller's)."""
    outstanding_cents: int
    """What their queued images will still cost: held against upfront payments."""
    supporter_until: float | None


_COUNT_AND_LOCK = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("requester"))
    .values(usage_requests=_USERS.c.usage_requests + 1, last_active_at=bindparam("now"))
    .returning(_USERS.c.kudos_cents)
)
_mine = (_REQUESTS.c.state == _QUEUED) & (_REQUESTS.c.user_id == bindparam("requester"))
_QUEUE_AND_TIER = select(
    select(func.coalesce(func.sum(_REQUESTS.c.n_waiting), 0)).where(_mine).scalar_subquery(),
    select(func.coalesce(func.sum((_REQUESTS.c.n_waiting + _REQUESTS.c.n_processing) * _REQUESTS.c.charge_cents), 0))
    .where(_mine)
    .scalar_subquery(),
    select(_SUPPORTERS.c.until).where(_SUPPORTERS.c.user_id == bindparam("requester")).scalar_subquery(),
)
_MINE_SQL = "FROM requests WHERE requests.state = 'queued' AND requests.user_id = users.id"
_COUNT_AND_READ: Any = _COUNT_AND_LOCK.returning(
    literal_column(f"(SELECT coalesce(sum(requests.n_waiting), 0) {_MINE_SQL})"),
    literal_column(
        f"(SELECT coalesce(sum((requests.n_waiting + requests.n_processing) * requests.charge_cents), 0) {_MINE_SQL})"
    ),
    literal_column("(SELECT supporters.until FROM supporters WHERE supporters.user_id = users.id)"),
    _USERS.c.usage_requests,
    literal_column("(SELECT seen.usage_requests FROM users AS seen WHERE seen.id = users.id)"),
)
"""The standing in the usage update's ``RETURNING`` as scalar subqueries (written as SQL: SQLAlchemy renders
``RETURNING`` columns unqualified for SQLite), then the usage count written and the one the statement's snapshot
holds (see the module's docstring)."""
_REQUEST_COLUMNS = tuple(column.name for column in _REQUESTS.columns)


@lru_cache(maxsize=1)
def _insert_and_count() -> Any:
    """PostgreSQL: the request row, its per-model queue rows (``models``, an array, maybe empty) and the count of
    the live workers that could serve it (``availability.eligible``), in one statement."""
    values = {name: bindparam(f"v_{name}", type_=_REQUESTS.c[name].type) for name in _REQUEST_COLUMNS}
    new = insert(_REQUESTS).values(values).returning(*_REQUESTS.c).cte("new_request")
    model = func.unnest(bindparam("models", type_=ARRAY(String)))
    queued = insert(_REQUEST_MODELS).from_select(
        ["request_id", "queue_rank", "model"], select(new.c.id, new.c.queue_rank, model)
    )
    return eligible_for_new_request(new).add_cte(queued.cte("new_models"))


_INSERT_REQUEST = insert(_REQUESTS).values(
    {name: bindparam(f"v_{name}", type_=_REQUESTS.c[name].type) for name in _REQUEST_COLUMNS}
)
_INSERT_MODEL = insert(_REQUEST_MODELS).values(
    request_id=bindparam("of_request"), model=bindparam("a_model"), queue_rank=bindparam("rank")
)
_INSERT_TARGET = insert(_REQUEST_WORKERS).values(request_id=bindparam("of_request"), worker_id=bindparam("a_worker"))


class IntakeRepository:
    """New requests: the requester's standing and the request's rows."""

    __slots__ = ("_postgres", "_sql")

    def __init__(self, sql: DirectSql, is_sqlite: bool) -> None:
        self._sql = sql
        self._postgres = not is_sqlite

    async def standing(self, user_id: int, now: float) -> Standing:
        """Count a new request in the user's usage (locking their row) and read their standing."""
        values = {"requester": user_id, "now": now}
        balance, queued, outstanding, until, counted, seen = await self._sql.one(_COUNT_AND_READ, values)
        # SQLite's subquery sees the count this statement wrote, and its one writer never waits for the row.
        if self._postgres and counted != seen + 1:  # another request of theirs committed while this one waited
            queued, outstanding, until = await self._sql.one(_QUEUE_AND_TIER, values)
        return Standing(int(balance), int(queued), int(outstanding), until)

    async def insert(
        self,
        row: dict[str, Any],
        models: list[str],
        targets: list[str],
        eligible_since: float | None = None,
        default_speed_pps: float = 0.0,
    ) -> Eligibility | None:
        """Insert a request (``row``: its columns), its per-model queue rows and the workers it targets.

        With ``eligible_since``, on PostgreSQL and for a request that targets no workers, the same statement counts
        the workers seen since then that could serve it (as ``availability.eligible`` does) and returns them;
        otherwise ``None``, and the caller counts them when it needs them."""
        values = {f"v_{name}": row.get(name) for name in _REQUEST_COLUMNS}  # absent columns are NULL
        if self._postgres and not targets:
            counted = {
                "models": models,
                "request_id": row["id"],
                "since": eligible_since or 0.0,
                "default_speed": default_speed_pps,
            }
            workers, threads, speed = await self._sql.one(_insert_and_count(), {**values, **counted})
            return Eligibility(int(workers), int(threads), float(speed)) if eligible_since is not None else None
        await self._sql.execute(_INSERT_REQUEST, values)
        if models:
            rows = [{"of_request": row["id"], "a_model": m, "rank": row["queue_rank"]} for m in models]
            await self._sql.execute_many(_INSERT_MODEL, rows)
        if targets:
            await self._sql.execute_many(_INSERT_TARGET, [{"of_request": row["id"], "a_worker": w} for w in targets])
        return None
