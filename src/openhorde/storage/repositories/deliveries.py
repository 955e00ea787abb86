"""Delivering a job (``POST /generate/submit``); over 400 lines because each statement is written for both engines.

On PostgreSQL a delivery usually takes one statement, sent alone (its own transaction: no ``BEGIN``, no
``COMMIT``): ``claim_and_settle`` claims the job and settles it with the rules' numbers bound (``DeliveryTerms``).
It claims nothing when the job's request has a webhook or its worker's owner would be trusted automatically by
this reward (both need the domain between claim and settle), nor when it is not the caller's processing job; the
caller then takes the two steps below, which SQLite always takes:

* ``claim``: one conditional update marks the job done if it is still processing and its worker belongs to the
  caller, and returns what settling needs (the request's price, the owner's trust and escrow earnings): on
  PostgreSQL joined in a CTE, on SQLite (which cannot join in an update's ``RETURNING``) as scalar subqueries.
* ``settle``: the ledger transaction and its postings, the requester's charge (never below zero), the
  owner's balance and contribution, escrow, the request's progress, the worker's figures, the shared key's
  use and the gallery copy. On PostgreSQL it is one statement of data-modifying CTEs that locks the two users
  in id order before it writes them, and locks no user row when the requester pays nothing (anonymous or a
  censored image); on SQLite, whose one writer runs alone, it is a short series of statements.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import BigInteger, Boolean, Float, Table, bindparam, func, literal_column, select, text, update

from openhorde.storage.direct_sql import DirectSql
from openhorde.storage.lifecycle import Transition
from openhorde.storage.repositories.statuses import RequestCounters, RequestJob
from openhorde.storage.tables import Job, KudosEscrow, Request, User, Worker

_JOBS = cast(Table, Job.__table__)
_REQUESTS = cast(Table, Request.__table__)
_WORKERS = cast(Table, Worker.__table__)
_USERS = cast(Table, User.__table__)
_ESCROW = cast(Table, KudosEscrow.__table__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A job just claimed as delivered, with what settling it needs."""

    job_id: str
    request_id: str
    worker_id: str
    worker_name: str
    model: str
    seed: int
    started_at: float
    requester_id: int
    price_cents: int
    charge_cents: int
    things: int
    gallery: bool
    webhook: str | None
    sharedkey_id: str | None
    owner_id: int
    worker_speed_pps: float | None
    owner_trusted: bool
    """Trusted, moderator or admin: rewards are paid in full."""
    owner_created_at: float
    escrow_earned_cents: int
    escrow_images: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """How to settle a delivery: who gets and pays what (hundredths of a kudo) and what else to record."""

    delivery: Delivery
    image_key: str
    now: float
    owner_share_cents: int
    """What reaches the owner's balance: the price less ``held_cents``."""
    held_cents: int
    """What goes to escrow (an untrusted owner's held part)."""
    track_escrow: bool
    """Whether the owner's escrow row records this reward (untrusted owners)."""
    charge_cents: int
    """What the requester owes: the request's charge, or 0 (anonymous, censored). Taken down to the balance."""
    speed_pps: float
    megapixelsteps: float
    sharedkey_cents: int
    """What the request's shared key has used by this image (0 when none, or censored)."""
    keep_in_gallery: bool
    memo: str
    request_done: Transition
    """How the request ends when this was its last image."""


@dataclass(frozen=True, slots=True)
class Settled:
    """The outcome of ``settle``: what the requester was charged and the request's state afterwards."""

    charged_cents: int
    request_state: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's claim that its job is done: what the job's row records."""

    done: Transition
    job_id: str
    user_id: int
    """The caller: the job must be one of their workers'."""
    now: float
    image_key: str
    censored: bool
    seed: int | None
    """The seed the worker reports (``None``: the job's stays)."""
    gen_metadata: list[dict[str, Any]]


def _claim_values(claim: Claim) -> dict[str, Any]:
    return {
        "job_id": claim.job_id,
        "user_id": claim.user_id,
        "now": claim.now,
        "image_key": claim.image_key,
        "censored": claim.censored,
        "seed": claim.seed,
        "gen_metadata": claim.gen_metadata,
    }


@dataclass(frozen=True, slots=True)
class DeliveryTerms:
    """The settlement's rules as numbers, for ``claim_and_settle`` (the domain's ``_settlement`` in SQL)."""

    anonymous_id: int
    """The requester whom nothing is charged."""
    escrow_share: float
    """The part of an untrusted owner's reward held in escrow."""
    trust_after_cents: int | None
    """What an untrusted owner must have earned (this reward included) to be trusted automatically; None: never."""
    trust_after_images: int
    trust_min_age_seconds: float
    speed_smoothing: float
    """Weight of the newest sample in the worker's moving-average speed."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """A job claimed and settled by ``claim_and_settle``."""

    job_id: str
    request_id: str
    requester_id: int
    owner_id: int
    model: str
    things: int
    price_cents: int
    charge_cents: int
    """What the requester owed (0 when anonymous or censored), before it was taken down to their balance."""
    job: RequestJob
    """The job as this statement left it (done, with its image)."""
    counters: RequestCounters
    """The request's counters as this statement left them (a check can answer from them)."""


_DELIVERED_COUNT = 12
"""The columns of ``claim_and_settle``'s row before the request's counters."""


_JOB_FIELDS = (_JOBS.c.id, _JOBS.c.request_id, _JOBS.c.worker_id, _JOBS.c.model, _JOBS.c.seed, _JOBS.c.started_at)
_CONTEXT_FIELDS = (
    _REQUESTS.c.user_id,
    _REQUESTS.c.price_cents,
    _REQUESTS.c.charge_cents,
    _REQUESTS.c.things,
    _REQUESTS.c.gallery,
    _REQUESTS.c.webhook,
    _REQUESTS.c.sharedkey_id,
    _WORKERS.c.user_id.label("owner_id"),
    _WORKERS.c.name,
    _WORKERS.c.speed_pps,
    (_USERS.c.is_trusted | _USERS.c.is_moderator | _USERS.c.is_admin).label("owner_trusted"),
    _USERS.c.created_at,
    func.coalesce(_ESCROW.c.earned_cents, 0).label("earned"),
    func.coalesce(_ESCROW.c.images, 0).label("images"),
)


def _with_context(jobs: Any) -> Any:
    """Select each claimed job's fields (from ``jobs``, a table or CTE) with its request, worker and owner."""
    return (
        select(
            jobs.c.id,
            jobs.c.request_id,
            jobs.c.worker_id,
            jobs.c.model,
            jobs.c.seed,
            jobs.c.started_at,
            *_CONTEXT_FIELDS,
        )
        .join_from(jobs, _REQUESTS, _REQUESTS.c.id == jobs.c.request_id)
        .join(_WORKERS, _WORKERS.c.id == jobs.c.worker_id)
        .join(_USERS, _USERS.c.id == _WORKERS.c.user_id)
        .outerjoin(_ESCROW, _ESCROW.c.user_id == _WORKERS.c.user_id)
    )


@lru_cache(maxsize=4)
def _claim_statement(done: Transition, with_context: bool) -> Any:
    """Mark the caller's job ``done`` if its state allows it; return it with its request, worker and owner (joined
    in a CTE when ``with_context``, PostgreSQL only; else as scalar subqueries)."""
    claim = (
        update(_JOBS)
        .where(
            _JOBS.c.id == bindparam("job_id"),
            _JOBS.c.state.in_([literal_column(f"'{source}'") for source in done.sources]),  # fixed SQL
            _JOBS.c.worker_id.in_(select(_WORKERS.c.id).where(_WORKERS.c.user_id == bindparam("user_id"))),
        )
        .values(
            state=done.to,
            finished_at=bindparam("now"),
            image_key=bindparam("image_key"),
            censored=bindparam("censored"),
            seed=func.coalesce(bindparam("seed", type_=_JOBS.c.seed.type), _JOBS.c.seed),
            gen_metadata=bindparam("gen_metadata", type_=_JOBS.c.gen_metadata.type),
            reward_cents=select(_REQUESTS.c.price_cents).where(_REQUESTS.c.id == _JOBS.c.request_id).scalar_subquery(),
        )
    )
    if with_context:
        return _with_context(claim.returning(*_JOB_FIELDS).cte("claimed"))
    return claim.returning(*_JOB_FIELDS, *_context_subqueries())


def _context_subqueries() -> list[Any]:
    """``_CONTEXT_FIELDS`` of the job being updated, as scalar subqueries in SQLite's ``RETURNING``.

    Written as SQL: SQLAlchemy renders ``RETURNING`` columns unqualified for SQLite, which would make ``id``
    ambiguous inside the subqueries."""
    owner = "(SELECT workers.user_id FROM workers WHERE workers.id = jobs.worker_id)"
    of_request = "FROM requests WHERE requests.id = jobs.request_id"
    return [
        literal_column(sql)
        for sql in (
            *(f"(SELECT requests.{name} {of_request})" for name in _REQUEST_CONTEXT),
            owner,
            "(SELECT workers.name FROM workers WHERE workers.id = jobs.worker_id)",
            "(SELECT workers.speed_pps FROM workers WHERE workers.id = jobs.worker_id)",
            f"(SELECT users.is_trusted OR users.is_moderator OR users.is_admin FROM users WHERE users.id = {owner})",
            f"(SELECT users.created_at FROM users WHERE users.id = {owner})",
            f"coalesce((SELECT kudos_escrow.earned_cents FROM kudos_escrow WHERE kudos_escrow.user_id = {owner}), 0)",
            f"coalesce((SELECT kudos_escrow.images FROM kudos_escrow WHERE kudos_escrow.user_id = {owner}), 0)",
        )
    ]


_REQUEST_CONTEXT = ("user_id", "price_cents", "charge_cents", "things", "gallery", "webhook", "sharedkey_id")
"""The request's columns in ``_CONTEXT_FIELDS``, in order."""


_STATE_AND_OWNER = (
    select(_JOBS.c.state, _WORKERS.c.user_id)
    .join_from(_JOBS, _WORKERS, _WORKERS.c.id == _JOBS.c.worker_id, isouter=True)
    .where(_JOBS.c.id == bindparam("job_id"))
)


def _delivery(row: Any) -> Delivery:
    (job_id, request_id, worker_id, model, seed, started_at, requester_id, price, charge, things, gallery, webhook,
     sharedkey_id, owner_id, worker_name, speed, trusted, created_at, earned, images) = row  # fmt: skip
    return Delivery(
        job_id=job_id,
        request_id=request_id,
        worker_id=worker_id,
        worker_name=worker_name,
        model=model,
        seed=int(seed),
        started_at=started_at,
        requester_id=requester_id,
        price_cents=int(price),
        charge_cents=int(charge),
        things=int(things),
        gallery=bool(gallery),
        webhook=webhook,
        sharedkey_id=sharedkey_id,
        owner_id=owner_id,
        worker_speed_pps=speed,
        owner_trusted=bool(trusted),
        owner_created_at=created_at,
        escrow_earned_cents=int(earned),
        escrow_images=int(images),
    )


class DeliveryRepository:
    """Claiming and settling delivered jobs."""

    __slots__ = ("_postgres", "_sql")

    def __init__(self, sql: DirectSql, is_sqlite: bool) -> None:
        self._sql = sql
        self._postgres = not is_sqlite

    async def claim(self, claim: Claim) -> Delivery | None:
        """Mark the caller's processing job done and return it with its context; ``None`` if it is not (any more)
        one of the caller's processing jobs (``state_and_owner`` tells why)."""
        row = await self._sql.first(_claim_statement(claim.done, self._postgres), _claim_values(claim))
        return _delivery(row) if row is not None else None

    @property
    def settles_at_once(self) -> bool:
        """Whether ``claim_and_settle`` is available (PostgreSQL)."""
        return self._postgres

    async def claim_and_settle(self, claim: Claim, request_done: Transition, terms: DeliveryTerms) -> Delivered | None:
        """PostgreSQL: claim the caller's processing job and settle it in one statement, a transaction of its own
        (see the module's docstring); ``None`` if it claimed nothing (not the caller's processing job, a request
        with a webhook, an owner this reward would trust: ``claim`` and ``settle`` then)."""
        values = {
            **_claim_values(claim),
            "gallery_id": str(uuid.uuid4()),
            "anonymous_id": terms.anonymous_id,
            "escrow_share": terms.escrow_share,
            "auto_trust": terms.trust_after_cents is not None,
            "trust_cents": terms.trust_after_cents or 0,
            "trust_images": terms.trust_after_images,
            "trust_min_age": terms.trust_min_age_seconds,
            "keep": 1 - terms.speed_smoothing,
            "smoothing": terms.speed_smoothing,
        }
        row = await self._sql.first_alone(_claim_and_settle_statement(claim.done, request_done), values)
        if row is None:
            return None
        job_id, request_id, requester_id, owner_id, model, things, price, charge = row[:8]
        worker_id, worker_name, seed, started_at = row[8:_DELIVERED_COUNT]
        job = RequestJob(
            id=job_id,
            state=claim.done.to,
            worker_id=worker_id,
            worker_name=worker_name,
            model=model,
            seed=int(seed),
            censored=claim.censored,
            image_key=claim.image_key,
            gen_metadata=tuple(claim.gen_metadata),
            started_at=started_at,
            finished_at=claim.now,
        )
        return Delivered(
            job_id=job_id,
            request_id=request_id,
            requester_id=requester_id,
            owner_id=owner_id,
            model=model,
            things=int(things),
            price_cents=int(price),
            charge_cents=int(charge),
            job=job,
            counters=RequestCounters(*row[_DELIVERED_COUNT:]),
        )

    async def state_and_owner(self, job_id: str) -> tuple[str, int | None] | None:
        """A job's state and its worker's owner (``None`` once the worker is deleted); ``None`` if no such job."""
        row = await self._sql.first(_STATE_AND_OWNER, {"job_id": job_id})
        return (str(row[0]), row[1]) if row is not None else None

    async def settle(self, settlement: Settlement) -> Settled:
        """Record everything a delivered image changes (see the module's docstring)."""
        if self._postgres:
            return await self._settle_in_one_statement(settlement)
        return await self._settle_step_by_step(settlement)

    async def _settle_in_one_statement(self, s: Settlement) -> Settled:
        d = s.delivery
        shape = _Shape(
            charges=s.charge_cents > 0,
            self_served=d.requester_id == d.owner_id,
            escrow=s.track_escrow,
            sharedkey=s.sharedkey_cents > 0 and d.sharedkey_id is not None,
            gallery=s.keep_in_gallery,
            done=s.request_done,
        )
        row = await self._sql.one(_settle_statement(shape), _settle_values(s))
        return Settled(charged_cents=int(row[0]), request_state=str(row[1]))

    async def _settle_step_by_step(self, s: Settlement) -> Settled:
        d = s.delivery
        values = _settle_values(s)
        charged = 0
        if s.charge_cents > 0:
            balance = int(await self._sql.scalar(_BALANCE, {"user_id": d.requester_id}) or 0)
            self_share = s.owner_share_cents if d.requester_id == d.owner_id else 0
            charged = min(s.charge_cents, max(0, balance + self_share))
        values["charged"] = charged
        values["tx"] = await self._sql.scalar(_SQLITE_TRANSACTION, values)
        for statement in _SQLITE_SETTLE_ALWAYS:
            await self._sql.execute(statement, values)
        if s.track_escrow:
            await self._sql.execute(_SQLITE_ESCROW, values)
        if s.sharedkey_cents > 0 and d.sharedkey_id is not None:
            await self._sql.execute(_SHAREDKEY_USE, values)
        if s.keep_in_gallery:
            await self._sql.execute(_GALLERY_COPY, values)
        state = str(await self._sql.scalar(_sqlite_progress(s.request_done), values))
        if state == s.request_done.to:
            await self._sql.execute(_LEAVE_MODEL_QUEUES, values)
        return Settled(charged_cents=charged, request_state=state)


_BALANCE = select(_USERS.c.kudos_cents).where(_USERS.c.id == bindparam("user_id"))


def _settle_values(s: Settlement) -> dict[str, Any]:
    d = s.delivery
    return {
        "job_id": d.job_id,
        "request_id": d.request_id,
        "worker_id": d.worker_id,
        "requester_id": d.requester_id,
        "owner_id": d.owner_id,
        "now": s.now,
        "memo": s.memo,
        "price": d.price_cents,
        "owner_share": s.owner_share_cents,
        "held": s.held_cents,
        "charge": s.charge_cents,
        "self_share": s.owner_share_cents if d.requester_id == d.owner_id else 0,
        "mps": s.megapixelsteps,
        "speed": s.speed_pps,
        "sharedkey_id": d.sharedkey_id,
        "sharedkey_cents": s.sharedkey_cents,
        "gallery_id": str(uuid.uuid4()),
        "image_key": s.image_key,
        "model": d.model,
        "seed": d.seed,
        "worker_name": d.worker_name,
    }


@dataclass(frozen=True)
class _Shape:
    """What a settlement's statement contains besides its fixed parts."""

    charges: bool
    self_served: bool
    escrow: bool
    sharedkey: bool
    gallery: bool
    done: Transition


_GALLERY_SELECT = """
    SELECT :gallery_id, requests.user_id, requests.id, :job_id, :image_key, requests.prompt, requests.params,
           :model, CAST(:seed AS BIGINT), :worker_id, :worker_name, requests.width, requests.height,
           CASE WHEN requests.source_image_key IS NULL THEN 'txt2img' ELSE requests.source_processing END,
           false, CAST(:now AS DOUBLE PRECISION)
    FROM requests WHERE requests.id = :request_id"""
_GALLERY_INSERT = """INSERT INTO gallery_images (id, user_id, request_id, job_id, image_key, prompt, params, model,
    seed, worker_id, worker_name, width, height, source_processing, censored, created_at)"""
_ESCROW_UPSERT = """INSERT INTO kudos_escrow (user_id, held_cents, earned_cents, images, releases)
    VALUES (:owner_id, :held, :price, 1, 0)
    ON CONFLICT (user_id) DO UPDATE SET held_cents = kudos_escrow.held_cents + EXCLUDED.held_cents,
        earned_cents = kudos_escrow.earned_cents + EXCLUDED.earned_cents, images = kudos_escrow.images + 1"""
_WORKER_FIGURES = """UPDATE workers SET speed_pps = :speed, fulfilments = workers.fulfilments + 1,
    megapixelsteps = workers.megapixelsteps + :mps, kudos_generated_cents = workers.kudos_generated_cents + :price
    WHERE workers.id = :worker_id"""
_SHAREDKEY_UPDATE = """UPDATE shared_keys SET utilized_cents = shared_keys.utilized_cents + :sharedkey_cents
    WHERE shared_keys.id = :sharedkey_id"""
_PROGRESS = """UPDATE requests SET
        state = CASE WHEN {done_from} AND requests.n_waiting = 0 AND requests.n_processing = 1
                THEN '{done}' ELSE requests.state END,
        n_processing = requests.n_processing - 1, n_finished = requests.n_finished + 1,
        charged_cents = requests.charged_cents + {charged}, last_activity_at = :now
    WHERE requests.id = :request_id RETURNING requests.state"""


_TRANSACTION = """tx AS (INSERT INTO kudos_transactions (kind, reference, created_at, memo)
    VALUES ('generation', :job_id, :now, :memo) RETURNING id)"""
# Both users' rows, locked in id order before either is written, so two settlements can't deadlock.
_LOCKED = """locked AS (SELECT users.id, users.kudos_cents FROM users
    WHERE users.id IN (:requester_id, :owner_id) ORDER BY users.id FOR UPDATE)"""
_PAYER = """payer AS (SELECT LEAST(CAST(:charge AS BIGINT),
        GREATEST(locked.kudos_cents + CAST(:self_share AS BIGINT), 0)) AS amount
    FROM locked WHERE locked.id = :requester_id)"""
_LEGS = (
    "SELECT NULL::INTEGER, 'mint', -CAST(:price AS BIGINT)",
    "SELECT CAST(:owner_id AS INTEGER), NULL, CAST(:owner_share AS BIGINT) WHERE CAST(:owner_share AS BIGINT) <> 0",
    "SELECT NULL::INTEGER, 'escrow', CAST(:held AS BIGINT) WHERE CAST(:held AS BIGINT) <> 0",
)
_PAYER_LEGS = (
    "SELECT CAST(:requester_id AS INTEGER), NULL, -amount FROM payer WHERE amount <> 0",
    "SELECT NULL::INTEGER, 'burn', amount FROM payer WHERE amount <> 0",
)
_OWNER_ROW = """owner_row AS (UPDATE users SET kudos_cents = users.kudos_cents + {delta},
        contribution_megapixelsteps = users.contribution_megapixelsteps + :mps,
        contribution_fulfillments = users.contribution_fulfillments + 1{usage}
    {where} users.id = :owner_id)"""
_PAYER_ROW = """payer_row AS (UPDATE users SET kudos_cents = users.kudos_cents - (SELECT amount FROM payer),
        usage_megapixelsteps = users.usage_megapixelsteps + :mps
    FROM locked WHERE locked.id = users.id AND users.id = :requester_id)"""
_UNQUEUED = """unqueued AS (DELETE FROM request_models WHERE request_models.request_id = :request_id
    AND EXISTS (SELECT 1 FROM progress WHERE progress.state = '{done}'))"""


@lru_cache(maxsize=64)
def _settle_statement(shape: _Shape) -> Any:
    """The PostgreSQL statement settling a delivery of this shape (see the module's docstring)."""
    charged = "(SELECT amount FROM payer)" if shape.charges else "0"
    legs = _LEGS + (_PAYER_LEGS if shape.charges else ())
    parts = [_TRANSACTION, *((_LOCKED, _PAYER) if shape.charges else ())]
    parts.append(
        "legs AS (INSERT INTO kudos_postings (transaction_id, user_id, system_account, amount_cents) "
        f"SELECT tx.id, leg.* FROM tx, ({' UNION ALL '.join(legs)}) AS leg)"
    )
    parts.append(
        _OWNER_ROW.format(
            delta=f"CAST(:owner_share AS BIGINT) - {charged}" if shape.self_served else "CAST(:owner_share AS BIGINT)",
            usage=", usage_megapixelsteps = users.usage_megapixelsteps + :mps" if shape.self_served else "",
            where="FROM locked WHERE locked.id = users.id AND" if shape.charges else "WHERE",
        )
    )
    if shape.charges and not shape.self_served:
        parts.append(_PAYER_ROW)
    if shape.escrow:
        parts.append(f"escrow AS ({_ESCROW_UPSERT})")
    if shape.sharedkey:
        parts.append(f"sharedkey AS ({_SHAREDKEY_UPDATE})")
    if shape.gallery:
        parts.append(f"gallery AS ({_GALLERY_INSERT} {_GALLERY_SELECT})")
    progress = _progress(shape.done, charged)
    parts += [f"worker AS ({_WORKER_FIGURES})", f"progress AS ({progress})", _UNQUEUED.format(done=shape.done.to)]
    return text(f"WITH {', '.join(parts)} SELECT {charged}, (SELECT state FROM progress)")


_SQLITE_TRANSACTION = text(
    "INSERT INTO kudos_transactions (kind, reference, created_at, memo) "
    "VALUES ('generation', :job_id, :now, :memo) RETURNING id"
)
_SQLITE_SETTLE_ALWAYS = (
    text(
        "INSERT INTO kudos_postings (transaction_id, user_id, system_account, amount_cents) "
        "SELECT :tx, NULL, 'mint', -:price "
        "UNION ALL SELECT :tx, :owner_id, NULL, :owner_share WHERE :owner_share <> 0 "
        "UNION ALL SELECT :tx, NULL, 'escrow', :held WHERE :held <> 0 "
        "UNION ALL SELECT :tx, :requester_id, NULL, -:charged WHERE :charged <> 0 "
        "UNION ALL SELECT :tx, NULL, 'burn', :charged WHERE :charged <> 0"
    ),
    # Both users in one statement: the owner's reward and contribution, the requester's charge and usage (the
    # requester's row only when it is charged or is the owner's, as on PostgreSQL; else usage is tallied).
    text(
        """UPDATE users SET
            kudos_cents = kudos_cents + (CASE WHEN id = :owner_id THEN :owner_share ELSE 0 END)
                - (CASE WHEN id = :requester_id THEN :charged ELSE 0 END),
            contribution_megapixelsteps = contribution_megapixelsteps + (CASE WHEN id = :owner_id THEN :mps ELSE 0 END),
            contribution_fulfillments = contribution_fulfillments + (CASE WHEN id = :owner_id THEN 1 ELSE 0 END),
            usage_megapixelsteps = usage_megapixelsteps + (CASE WHEN id = :requester_id THEN :mps ELSE 0 END)
        WHERE id = :owner_id OR (id = :requester_id AND (:charge > 0 OR :requester_id = :owner_id))"""
    ),
    text(_WORKER_FIGURES),
)
_SQLITE_ESCROW = text(_ESCROW_UPSERT)
_SHAREDKEY_USE = text(_SHAREDKEY_UPDATE)
_GALLERY_COPY = text(_GALLERY_INSERT + _GALLERY_SELECT)


def _progress(done: Transition, charged: str) -> str:
    return _PROGRESS.format(charged=charged, done=done.to, done_from=done.sql_condition("requests.state"))


@lru_cache(maxsize=4)
def _sqlite_progress(done: Transition) -> Any:
    return text(_progress(done, ":charged"))


_LEAVE_MODEL_QUEUES = text("DELETE FROM request_models WHERE request_id = :request_id")


# ``claim_and_settle``: the claim joins the job's request, worker and owner, refusing the cases the domain must see
# between claim and settle; ``terms`` works out the settlement as ``domain/queue/submit._settlement`` does (the same
# float arithmetic: Python's round() and PostgreSQL's round(double precision) both round half to even); the rest is
# ``_settle_statement`` with the shape's choices made per row, by conditions, instead of by which parts are there.
_CLAIM_AND_SETTLE = """WITH claimed AS (UPDATE jobs SET state = '{job_done}', finished_at = :now,
        image_key = :image_key, censored = :censored, seed = coalesce(:seed, jobs.seed), gen_metadata = :gen_metadata,
        reward_cents = requests.price_cents
    FROM requests, workers, users LEFT OUTER JOIN kudos_escrow ON kudos_escrow.user_id = users.id
    WHERE jobs.id = :job_id AND {job_from} AND requests.id = jobs.request_id AND workers.id = jobs.worker_id
        AND workers.user_id = :user_id AND users.id = workers.user_id AND requests.webhook IS NULL
        AND (users.is_trusted OR users.is_moderator OR users.is_admin OR requests.price_cents <= 0 OR NOT (
            :auto_trust
            AND coalesce(kudos_escrow.earned_cents, 0) + requests.price_cents >= :trust_cents
            AND coalesce(kudos_escrow.images, 0) + 1 >= :trust_images
            AND :now - users.created_at >= :trust_min_age))
    RETURNING jobs.id AS job_id, jobs.request_id, jobs.worker_id, jobs.model, jobs.seed, jobs.started_at,
        requests.user_id AS requester_id, requests.price_cents AS price, requests.charge_cents, requests.things,
        requests.gallery, requests.sharedkey_id, workers.user_id AS owner_id, workers.name AS worker_name,
        workers.speed_pps, users.is_trusted OR users.is_moderator OR users.is_admin AS trusted),
terms AS (SELECT claimed.*,
        CASE WHEN claimed.trusted OR claimed.price <= 0 THEN 0 ELSE GREATEST(0, LEAST(claimed.price,
            CAST(round(CAST(claimed.price AS DOUBLE PRECISION) * :escrow_share) AS BIGINT))) END AS held,
        CASE WHEN :censored OR claimed.requester_id = :anonymous_id THEN 0 ELSE claimed.charge_cents END AS charge,
        claimed.requester_id = claimed.owner_id AS self_served,
        CAST(claimed.things AS DOUBLE PRECISION) / CAST(1000000 AS DOUBLE PRECISION) AS mps,
        CAST(claimed.things AS DOUBLE PRECISION) / GREATEST(:now - claimed.started_at, 0.001) AS sample
    FROM claimed),
locked AS (SELECT users.id, users.kudos_cents FROM users, terms
    WHERE terms.charge > 0 AND users.id IN (terms.requester_id, terms.owner_id) ORDER BY users.id FOR UPDATE OF users),
payer AS (SELECT LEAST(terms.charge, GREATEST(locked.kudos_cents
        + CASE WHEN terms.self_served THEN terms.price - terms.held ELSE 0 END, 0)) AS amount
    FROM terms JOIN locked ON locked.id = terms.requester_id),
tx AS (INSERT INTO kudos_transactions (kind, reference, created_at, memo)
    SELECT 'generation', terms.job_id, :now,
        'image of request ' || terms.request_id || ' by worker ' || terms.worker_name
    FROM terms RETURNING id),
legs AS (INSERT INTO kudos_postings (transaction_id, user_id, system_account, amount_cents)
    SELECT tx.id, leg.* FROM tx, (
        SELECT NULL::INTEGER, 'mint', -terms.price FROM terms
        UNION ALL SELECT terms.owner_id, NULL, terms.price - terms.held FROM terms WHERE terms.price - terms.held <> 0
        UNION ALL SELECT NULL::INTEGER, 'escrow', terms.held FROM terms WHERE terms.held <> 0
        UNION ALL SELECT terms.requester_id, NULL, -payer.amount FROM terms, payer WHERE payer.amount <> 0
        UNION ALL SELECT NULL::INTEGER, 'burn', payer.amount FROM payer WHERE payer.amount <> 0) AS leg),
owner_row AS (UPDATE users SET
        kudos_cents = users.kudos_cents + terms.price - terms.held
            - CASE WHEN terms.self_served THEN coalesce(payer.amount, 0) ELSE 0 END,
        contribution_megapixelsteps = users.contribution_megapixelsteps + terms.mps,
        contribution_fulfillments = users.contribution_fulfillments + 1,
        usage_megapixelsteps = users.usage_megapixelsteps + CASE WHEN terms.self_served THEN terms.mps ELSE 0 END
    FROM terms LEFT OUTER JOIN locked ON locked.id = terms.owner_id LEFT OUTER JOIN payer ON true
    WHERE users.id = terms.owner_id),
payer_row AS (UPDATE users SET kudos_cents = users.kudos_cents - payer.amount,
        usage_megapixelsteps = users.usage_megapixelsteps + terms.mps
    FROM terms, payer, locked WHERE users.id = terms.requester_id AND locked.id = users.id AND NOT terms.self_served),
escrow AS (INSERT INTO kudos_escrow (user_id, held_cents, earned_cents, images, releases)
    SELECT terms.owner_id, terms.held, terms.price, 1, 0 FROM terms WHERE NOT terms.trusted AND terms.price > 0
    ON CONFLICT (user_id) DO UPDATE SET held_cents = kudos_escrow.held_cents + EXCLUDED.held_cents,
        earned_cents = kudos_escrow.earned_cents + EXCLUDED.earned_cents, images = kudos_escrow.images + 1),
sharedkey AS (UPDATE shared_keys SET utilized_cents = shared_keys.utilized_cents + terms.charge_cents
    FROM terms WHERE shared_keys.id = terms.sharedkey_id AND NOT :censored),
gallery AS ({gallery_insert}
    SELECT :gallery_id, requests.user_id, requests.id, terms.job_id, :image_key, requests.prompt, requests.params,
        terms.model, terms.seed, terms.worker_id, terms.worker_name, requests.width, requests.height,
        CASE WHEN requests.source_image_key IS NULL THEN 'txt2img' ELSE requests.source_processing END, false, :now
    FROM terms JOIN requests ON requests.id = terms.request_id WHERE terms.gallery AND NOT :censored),
worker AS (UPDATE workers SET speed_pps = CASE WHEN terms.speed_pps IS NULL THEN terms.sample
            ELSE :keep * terms.speed_pps + :smoothing * terms.sample END,
        fulfilments = workers.fulfilments + 1, megapixelsteps = workers.megapixelsteps + terms.mps,
        kudos_generated_cents = workers.kudos_generated_cents + terms.price
    FROM terms WHERE workers.id = terms.worker_id),
progress AS (UPDATE requests SET
        state = CASE WHEN {request_from} AND requests.n_waiting = 0 AND requests.n_processing = 1
            THEN '{request_done}' ELSE requests.state END,
        n_processing = requests.n_processing - 1, n_finished = requests.n_finished + 1,
        charged_cents = requests.charged_cents + coalesce((SELECT amount FROM payer), 0), last_activity_at = :now
    FROM terms WHERE requests.id = terms.request_id RETURNING {counters}),
unqueued AS (DELETE FROM request_models USING terms WHERE request_models.request_id = terms.request_id
    AND EXISTS (SELECT 1 FROM progress WHERE progress.state = '{request_done}'))
SELECT terms.job_id, terms.request_id, terms.requester_id, terms.owner_id, terms.model, terms.things, terms.price,
    terms.charge, terms.worker_id, terms.worker_name, terms.seed, terms.started_at, progress.*
FROM terms, progress"""


@lru_cache(maxsize=4)
def _claim_and_settle_statement(done: Transition, request_done: Transition) -> Any:
    """The PostgreSQL statement of ``claim_and_settle``."""
    sql = _CLAIM_AND_SETTLE.format(
        job_done=done.to,
        job_from=done.sql_condition("jobs.state"),
        request_done=request_done.to,
        request_from=request_done.sql_condition("requests.state"),
        gallery_insert=_GALLERY_INSERT,
        counters=", ".join(f"requests.{field.name}" for field in fields(RequestCounters)),
    )
    return text(sql).bindparams(
        bindparam("now", type_=Float),
        bindparam("censored", type_=Boolean),
        bindparam("seed", type_=BigInteger),
        bindparam("gen_metadata", type_=_JOBS.c.gen_metadata.type),
        bindparam("auto_trust", type_=Boolean),
        bindparam("trust_cents", type_=BigInteger),
        bindparam("trust_min_age", type_=Float),
        bindparam("escrow_share", type_=Float),
        bindparam("keep", type_=Float),
        bindparam("smoothing", type_=Float),
    )
