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
* ``admit`` (PostgreSQL): both in one statement, a transaction of its own, for the common request: the limits it
  must pass are bound as numbers (``Admission``), and the statement counts, checks and inserts only if it passes
  them with a standing that is current (no other request of theirs committed while it waited for the lock). When
  it inserts nothing the caller takes the two steps above, which say why or take the rarer cases (a downgrade, a
  Supporter's boost and monthly grant). When it counted the request all the same (it waited for the lock, so its
  figures were stale) the caller may try it again, and neither that try nor ``standing`` counts it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Integer,
    String,
    Table,
    bindparam,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
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


@dataclass(frozen=True, slots=True)
class Admission:
    """What ``admit`` checks a new request against, bound as numbers by the domain (``create_request``'s rules)."""

    images: int
    concurrency: int
    """The most images the requester may have waiting, this request's included."""
    total_cents: int
    """What the whole request will charge."""
    upfront: bool
    """Whether the balance, less what their queued images will still cost, must cover ``total_cents``."""
    ageing_per_second: float
    """The request's rank is its priority (the balance in kudos) less this times its creation time."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """What ``admit`` did."""

    queued: bool
    """The request and its queue rows were inserted (and committed: the statement was a transaction of its own)."""
    counted: bool
    """The request was counted in the requester's usage (committed), even when it was not queued."""
    stale: bool
    """It passed the limits as the statement saw them but was not queued: another request of theirs committed
    while it waited for their row, so what it saw was out of date (another try may queue it)."""
    eligibility: Eligibility | None
    """The live workers that could serve it, when it was queued and asked for (``eligible_since``)."""


_COUNT_AND_LOCK = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("requester"))
    .values(
        usage_requests=_USERS.c.usage_requests + bindparam("counts", type_=Integer), last_active_at=bindparam("now")
    )
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
_QUEUED_IMAGES_SQL = f"(SELECT coalesce(sum(requests.n_waiting), 0) {_MINE_SQL})"
"""In a statement that updates the requester's ``users`` row: the images of their queued requests still waiting."""
_OUTSTANDING_SQL = (
    f"(SELECT coalesce(sum((requests.n_waiting + requests.n_processing) * requests.charge_cents), 0) {_MINE_SQL})"
)
"""Beside it: what their queued images will still cost."""
_SEEN_SQL = "(SELECT seen.usage_requests FROM users AS seen WHERE seen.id = users.id)"
"""Beside it: their usage count as the statement's snapshot holds it (before it waited for their row)."""
_COUNT_AND_READ: Any = _COUNT_AND_LOCK.returning(
    literal_column(_QUEUED_IMAGES_SQL),
    literal_column(_OUTSTANDING_SQL),
    literal_column("(SELECT supporters.until FROM supporters WHERE supporters.user_id = users.id)"),
    _USERS.c.usage_requests,
    literal_column(_SEEN_SQL),
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


@lru_cache(maxsize=1)
def _admit_and_insert() -> Any:
    """PostgreSQL: count a new request in its requester's usage if it passes the ``Admission`` bound with it, and
    insert it if the standing the count saw was current (see the module's docstring), with ``_insert_and_count``'s
    queue rows and count; its rank and ``kudos_backed`` come from the locked balance. Returns the count, then
    whether the request passed the limits (its requester's row was updated) and whether it was queued."""
    users = _USERS.c
    queued = literal_column(_QUEUED_IMAGES_SQL, BigInteger)
    outstanding = literal_column(_OUTSTANDING_SQL, BigInteger)
    now = bindparam("now", type_=Float)
    total = bindparam("total_cents", type_=Integer)
    counts = bindparam("counts", type_=Integer)
    supporting = select(_SUPPORTERS.c.user_id).where(_SUPPORTERS.c.user_id == users.id, _SUPPORTERS.c.until > now)
    counted = (
        update(_USERS)
        .where(
            users.id == bindparam("requester"),
            ~supporting.exists(),  # a Supporter's boost and monthly grant: the two steps
            queued + bindparam("images", type_=Integer) <= bindparam("concurrency", type_=Integer),
            or_(~bindparam("upfront", type_=Boolean), users.kudos_cents - outstanding >= total),
        )
        .values(usage_requests=users.usage_requests + counts, last_active_at=now)
        .returning(
            users.kudos_cents.label("balance"),
            outstanding.label("outstanding"),
            users.usage_requests.label("written"),
            literal_column(_SEEN_SQL, Integer).label("seen"),
        )
        .cte("counted")
    )
    admitted = select(counted.c.balance, counted.c.outstanding).where(counted.c.written == counted.c.seen + counts)
    admitted_cte = admitted.cte("admitted")
    worked_out = {
        # The priority is the balance in kudos (``role_effects.queue_priority``), in the same float operations.
        "queue_rank": literal_column("CAST(admitted.balance AS DOUBLE PRECISION) / 100", Float)
        - bindparam("ageing", type_=Float) * now,
        "kudos_backed": admitted_cte.c.balance - admitted_cte.c.outstanding >= total,
    }
    row = [worked_out.get(name, bindparam(f"v_{name}", type_=_REQUESTS.c[name].type)) for name in _REQUEST_COLUMNS]
    new = (
        insert(_REQUESTS)
        .from_select(list(_REQUEST_COLUMNS), select(*row).select_from(admitted_cte))
        .returning(*_REQUESTS.c)
        .cte("new_request")
    )
    model = func.unnest(bindparam("models", type_=ARRAY(String)))
    queue_rows = insert(_REQUEST_MODELS).from_select(
        ["request_id", "queue_rank", "model"], select(new.c.id, new.c.queue_rank, model)
    )
    return (
        eligible_for_new_request(new)
        .add_columns(
            select(func.count()).select_from(counted).scalar_subquery(),
            select(func.count()).select_from(new).scalar_subquery(),
        )
        .add_cte(queue_rows.cte("new_models"))
    )


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

    async def standing(self, user_id: int, now: float, count: bool = True) -> Standing:
        """Count a new request in the user's usage (locking their row) and read their standing; without ``count``
        (``admit`` counted it already) only lock and read."""
        counts = 1 if count else 0
        values = {"requester": user_id, "now": now, "counts": counts}
        balance, queued, outstanding, until, written, seen = await self._sql.one(_COUNT_AND_READ, values)
        # SQLite's subquery sees the count this statement wrote, and its one writer never waits for the row.
        if self._postgres and written != seen + counts:  # another request of theirs committed while this one waited
            queued, outstanding, until = await self._sql.one(_QUEUE_AND_TIER, values)
        return Standing(int(balance), int(queued), int(outstanding), until)

    @property
    def admits_at_once(self) -> bool:
        """Whether ``admit`` is available (PostgreSQL)."""
        return self._postgres

    async def admit(
        self,
        user_id: int,
        now: float,
        admission: Admission,
        row: dict[str, Any],
        models: list[str],
        eligible_since: float | None = None,
        default_speed_pps: float = 0.0,
        count: bool = True,
    ) -> Admitted:
        """PostgreSQL: ``standing`` and ``insert`` in one statement that is a transaction by itself, for a request
        that targets no workers, if it passes ``admission`` (see the module's docstring). ``row``'s ``queue_rank``
        and ``kudos_backed`` are worked out from the balance the statement locks. Without ``count`` (a try before
        counted it) it does not count the request again."""
        values = {
            **{f"v_{name}": row.get(name) for name in _REQUEST_COLUMNS},
            "requester": user_id,
            "now": now,
            "counts": 1 if count else 0,
            "images": admission.images,
            "concurrency": admission.concurrency,
            "total_cents": admission.total_cents,
            "upfront": admission.upfront,
            "ageing": admission.ageing_per_second,
            "models": models,
            "request_id": row["id"],
            "since": eligible_since or 0.0,
            "default_speed": default_speed_pps,
        }
        found = await self._sql.first_alone(_admit_and_insert(), values)
        workers, threads, speed, passed, queued = found if found is not None else (0, 0, 0.0, 0, 0)
        eligibility = Eligibility(int(workers), int(threads), float(speed)) if eligible_since is not None else None
        return Admitted(
            queued=bool(queued),
            counted=bool(passed) and count,
            stale=bool(passed) and not queued,
            eligibility=eligibility if queued else None,
        )

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
