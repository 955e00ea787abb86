"""The interrogations repository; over 400 lines because one aggregate (a request, its forms, their leases) keeps
every statement here, each named and built once: alchemy requests, their hand-out to alchemists and leases.

A pop hands out forms with one statement: an update of the best waiting forms the worker may take, chosen by a
subquery that walks ``ix_interrogation_forms_queue`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so parallel
pops take different forms) and changed only while still ``waiting``. A submit claims its form with one
conditional update (``processing`` → ``done``, only for a worker of the caller's), so a second submit finds
nothing to claim. Every state change takes a ``Transition`` from the domain's table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Float,
    Integer,
    Row,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.lifecycle import Transition
from openhorde.storage.tables import Interrogation, InterrogationForm, Worker

_INTERROGATIONS = cast(Table, Interrogation.__table__)
_FORMS = cast(Table, InterrogationForm.__table__)
_WORKERS = cast(Table, Worker.__table__)


@dataclass(frozen=True, slots=True)
class InterrogationRow:
    """An interrogation request as its status and its clean-up need it."""

    id: str
    user_id: int
    created_at: float
    expires_at: float
    source_key: str
    image_tiles: int
    slow_workers: bool
    trusted_workers: bool
    webhook: str | None


@dataclass(frozen=True, slots=True)
class FormView:
    """One form of an interrogation, in the client's order."""

    id: str
    name: str
    state: str
    result: dict[str, Any] | None
    worker_id: str | None


@dataclass(frozen=True, slots=True)
class HandedForm:
    """A form just handed to a worker, with where its source image is."""

    id: str
    name: str
    payload: dict[str, Any] | None
    interrogation_id: str
    source_key: str


@dataclass(frozen=True, slots=True)
class FormHolder:
    """A form's state and who holds it: for a submit that could not claim it, and for a fault."""

    id: str
    name: str
    state: str
    interrogation_id: str
    worker_id: str | None
    owner_id: int | None
    """The user owning the worker that holds it (``None`` once that worker was deleted)."""


@dataclass(frozen=True, slots=True)
class DeliveredForm:
    """A form just claimed as delivered, with what settling it needs."""

    id: str
    name: str
    interrogation_id: str
    worker_id: str
    requester_id: int
    reward_cents: int
    charge_cents: int
    started_at: float


@dataclass(frozen=True, slots=True)
class AbortedForm:
    """A form taken back from its worker: waiting again, or faulted after too many aborts."""

    id: str
    state: str
    worker_id: str | None


@dataclass(frozen=True, slots=True)
class Offer:
    """What a popping alchemist can take: these forms, images up to ``max_tiles``, fast or trusted or neither."""

    forms: tuple[str, ...]
    max_tiles: int
    fast: bool
    trusted: bool
    only_users: tuple[int, ...] | None = None
    """Only forms of these requesters (its owner's and priority users' first, or its owner's in maintenance)."""


_INTERROGATION_FIELDS = [
    _INTERROGATIONS.c[name]
    for name in (
        "id",
        "user_id",
        "created_at",
        "expires_at",
        "source_key",
        "image_tiles",
        "slow_workers",
        "trusted_workers",
        "webhook",
    )
]
_GET = select(*_INTERROGATION_FIELDS).where(_INTERROGATIONS.c.id == bindparam("interrogation"))
_FORMS_OF = (
    select(_FORMS.c.id, _FORMS.c.name, _FORMS.c.state, _FORMS.c.result, _FORMS.c.worker_id)
    .where(_FORMS.c.interrogation_id == bindparam("interrogation"))
    .order_by(_FORMS.c.position)
)
_OPEN = _FORMS.c.state.in_([literal_column("'waiting'"), literal_column("'processing'")])
_OPEN_FORMS_OF_USER = select(func.count()).select_from(_FORMS).where(_FORMS.c.user_id == bindparam("user"), _OPEN)
_INSERT_INTERROGATION = insert(_INTERROGATIONS)
_INSERT_FORM = insert(_FORMS)
_EXTEND = (
    update(_INTERROGATIONS)
    .where(_INTERROGATIONS.c.id.in_(bindparam("interrogations", expanding=True)))
    .values(
        expires_at=case(
            (_INTERROGATIONS.c.expires_at < bindparam("until", type_=Float), bindparam("until", type_=Float)),
            else_=_INTERROGATIONS.c.expires_at,
        )
    )
)
_SOURCES = select(_INTERROGATIONS.c.id, _INTERROGATIONS.c.source_key).where(
    _INTERROGATIONS.c.id.in_(bindparam("interrogations", expanding=True))
)
_HOLDER = (
    select(
        _FORMS.c.id,
        _FORMS.c.name,
        _FORMS.c.state,
        _FORMS.c.interrogation_id,
        _FORMS.c.worker_id,
        _WORKERS.c.user_id.label("owner_id"),
    )
    .select_from(_FORMS.outerjoin(_WORKERS, _WORKERS.c.id == _FORMS.c.worker_id))
    .where(_FORMS.c.id == bindparam("form"))
)
_DELIVERED = (
    update(_WORKERS)
    .where(_WORKERS.c.id == bindparam("worker"))
    .values(
        fulfilments=_WORKERS.c.fulfilments + 1,
        kudos_generated_cents=_WORKERS.c.kudos_generated_cents + bindparam("reward"),
        speed_pps=case(
            (_WORKERS.c.speed_pps.is_(None), bindparam("sample", type_=Float)),
            else_=_WORKERS.c.speed_pps * bindparam("keep", type_=Float)
            + bindparam("sample", type_=Float) * bindparam("weight", type_=Float),
        ),
    )
)
_EXPIRED_IDS = (
    select(_FORMS.c.id)
    .where(_FORMS.c.state == literal_column("'processing'"), _FORMS.c.deadline_at < bindparam("now"))
    .order_by(_FORMS.c.deadline_at)
    .limit(bindparam("batch"))
)
_ENDED = (
    select(_INTERROGATIONS.c.id, _INTERROGATIONS.c.source_key)
    .where(_INTERROGATIONS.c.expires_at < bindparam("now"))
    .order_by(_INTERROGATIONS.c.expires_at)
    .limit(bindparam("batch"))
)
_DONE_FORMS_OF = select(_FORMS.c.id, _FORMS.c.name).where(
    _FORMS.c.interrogation_id.in_(bindparam("interrogations", expanding=True))
)
_DELETE_FORMS = delete(_FORMS).where(_FORMS.c.interrogation_id.in_(bindparam("interrogations", expanding=True)))
_DELETE = delete(_INTERROGATIONS).where(_INTERROGATIONS.c.id.in_(bindparam("interrogations", expanding=True)))
_SKIPPED_UNTRUSTED = (
    select(func.count())
    .select_from(_FORMS)
    .where(
        _FORMS.c.state == literal_column("'waiting'"),
        _FORMS.c.name.in_(bindparam("forms", expanding=True)),
        _FORMS.c.trusted_workers.is_(True),
    )
)


def best_forms(processing: Transition, only_users: bool) -> Any:
    """The ids of the best ``limit`` forms an ``Offer`` allows, in priority order (older first): a walk of
    ``ix_interrogation_forms_queue`` from the top."""
    best = (
        select(_FORMS.c.id)
        .where(
            _FORMS.c.state.in_([literal_column(repr(source)) for source in processing.sources]),
            _FORMS.c.name.in_(bindparam("forms", expanding=True)),
            _FORMS.c.image_tiles <= bindparam("max_tiles"),
            or_(_FORMS.c.slow_workers.is_(True), bindparam("fast", type_=Boolean)),
            or_(_FORMS.c.trusted_workers.is_(False), bindparam("trusted", type_=Boolean)),
        )
        .order_by(_FORMS.c.priority.desc(), _FORMS.c.created_at, _FORMS.c.id)
        .limit(bindparam("limit", type_=Integer))
    )
    if only_users:
        best = best.where(_FORMS.c.user_id.in_(bindparam("users", expanding=True)))
    return best


@lru_cache(maxsize=8)
def _hand_out_statement(processing: Transition, only_users: bool, postgres: bool) -> Any:
    """Lease the best forms (``best_forms``) to one worker, skipping rows another pop holds (PostgreSQL)."""
    best = best_forms(processing, only_users)
    if postgres:
        # A materialized CTE: as an IN subquery PostgreSQL may run a locking LIMIT more than once per statement
        # and lease more forms than asked.
        chosen = best.with_for_update(skip_locked=True).cte("chosen").prefix_with("MATERIALIZED")
        picked = select(chosen.c.id).scalar_subquery()
    else:
        picked = best.scalar_subquery()
    return (
        update(_FORMS)
        .where(
            _FORMS.c.id.in_(picked),
            _FORMS.c.state.in_([literal_column(repr(source)) for source in processing.sources]),
        )
        .values(
            state=processing.to,
            worker_id=bindparam("worker"),
            started_at=bindparam("now"),
            deadline_at=bindparam("deadline"),
        )
        .returning(_FORMS.c.id, _FORMS.c.name, _FORMS.c.payload, _FORMS.c.interrogation_id, _FORMS.c.position)
    )


@lru_cache(maxsize=8)
def _claim_statement(done: Transition) -> Any:
    """Mark a form done with its result, if it is still in a state ``done`` may leave and held by a worker of
    the caller."""
    owned = select(_WORKERS.c.id).where(_WORKERS.c.user_id == bindparam("owner"))
    return (
        update(_FORMS)
        .where(
            _FORMS.c.id == bindparam("form"),
            _FORMS.c.state.in_([literal_column(repr(source)) for source in done.sources]),
            _FORMS.c.worker_id.in_(owned.scalar_subquery()),
        )
        .values(state=done.to, result=bindparam("new_result"), deadline_at=None)
        .returning(
            _FORMS.c.id,
            _FORMS.c.name,
            _FORMS.c.interrogation_id,
            _FORMS.c.worker_id,
            _FORMS.c.user_id,
            _FORMS.c.reward_cents,
            _FORMS.c.charge_cents,
            _FORMS.c.started_at,
        )
    )


@lru_cache(maxsize=8)
def _abort_statement(back: Transition, faulted: Transition) -> Any:
    """Take forms back from their workers: waiting again, or faulted once they were aborted ``max_aborts``
    times; only forms still in a state both may leave (and, for expiry, past their deadline)."""
    sources = sorted(set(back.sources) & set(faulted.sources))
    return (
        update(_FORMS)
        .where(
            _FORMS.c.id.in_(bindparam("forms", expanding=True)),
            _FORMS.c.state.in_([literal_column(repr(source)) for source in sources]),
            or_(
                _FORMS.c.deadline_at < bindparam("deadline_before", type_=Float),
                bindparam("any_deadline", type_=Boolean),
            ),
        )
        .values(
            state=case((_FORMS.c.aborts >= bindparam("max_aborts"), faulted.to), else_=back.to),
            aborts=_FORMS.c.aborts + 1,
            started_at=None,
            deadline_at=None,
        )
        .returning(_FORMS.c.id, _FORMS.c.state, _FORMS.c.worker_id)
    )


@lru_cache(maxsize=8)
def _cancel_statement(cancelled: Transition) -> Any:
    """End an interrogation's forms that are in a state ``cancelled`` may leave."""
    return (
        update(_FORMS)
        .where(
            _FORMS.c.interrogation_id == bindparam("interrogation"),
            _FORMS.c.state.in_([literal_column(repr(source)) for source in cancelled.sources]),
        )
        .values(state=cancelled.to)
    )


def _interrogation(row: Row[Any] | None) -> InterrogationRow | None:
    return None if row is None else InterrogationRow(**row._mapping)


class InterrogationRepository:
    """Every statement about ``interrogations`` and ``interrogation_forms``, and an alchemist's delivery figures."""

    __slots__ = ("_postgres", "_session")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._postgres = not is_sqlite

    async def create(self, interrogation: dict[str, Any], forms: Sequence[dict[str, Any]]) -> None:
        """Insert an interrogation and its forms (rows as column → value)."""
        await self._session.execute(_INSERT_INTERROGATION, interrogation)
        await self._session.execute(_INSERT_FORM, list(forms))

    async def open_forms_of(self, user_id: int) -> int:
        """How many forms of this user are waiting or being processed."""
        return int(await self._session.scalar(_OPEN_FORMS_OF_USER, {"user": user_id}) or 0)

    async def get(self, interrogation_id: str) -> InterrogationRow | None:
        """The interrogation with this id."""
        return _interrogation((await self._session.execute(_GET, {"interrogation": interrogation_id})).first())

    async def forms_of(self, interrogation_id: str) -> list[FormView]:
        """An interrogation's forms, in the order the client listed them."""
        rows = await self._session.execute(_FORMS_OF, {"interrogation": interrogation_id})
        return [FormView(**row._mapping) for row in rows]

    async def cancel(self, cancelled: Transition, interrogation_id: str) -> None:
        """End the forms of an interrogation that may still be cancelled."""
        await self._session.execute(_cancel_statement(cancelled), {"interrogation": interrogation_id})

    async def hand_out(
        self, processing: Transition, offer: Offer, limit: int, worker_id: str, now: float, deadline: float
    ) -> list[HandedForm]:
        """Lease up to ``limit`` of the best forms ``offer`` allows to ``worker_id`` until ``deadline``."""
        if not offer.forms or limit <= 0 or (offer.only_users is not None and not offer.only_users):
            return []
        values: dict[str, Any] = {
            "forms": list(offer.forms),
            "max_tiles": offer.max_tiles,
            "fast": offer.fast,
            "trusted": offer.trusted,
            "limit": limit,
            "worker": worker_id,
            "now": now,
            "deadline": deadline,
        }
        if offer.only_users is not None:
            values["users"] = list(offer.only_users)
        statement = _hand_out_statement(processing, offer.only_users is not None, self._postgres)
        rows = sorted(
            (await self._session.execute(statement, values)).all(), key=lambda r: (r.interrogation_id, r.position)
        )
        if not rows:
            return []
        owners = sorted({row.interrogation_id for row in rows})
        sources = {str(i): str(key) for i, key in await self._session.execute(_SOURCES, {"interrogations": owners})}
        return [
            HandedForm(row.id, row.name, row.payload, row.interrogation_id, str(sources[row.interrogation_id]))
            for row in rows
        ]

    async def extend(self, interrogation_ids: Sequence[str], until: float) -> None:
        """Keep these interrogations at least until ``until``."""
        if interrogation_ids:
            values = {"interrogations": sorted(set(interrogation_ids)), "until": until}
            await self._session.execute(_EXTEND, values)

    async def skipped_untrusted(self, forms: Sequence[str]) -> int:
        """Waiting forms of these kinds that only a trusted worker may take."""
        if not forms:
            return 0
        return int(await self._session.scalar(_SKIPPED_UNTRUSTED, {"forms": list(forms)}) or 0)

    async def holder(self, form_id: str) -> FormHolder | None:
        """A form's state and the worker (and its owner) holding it."""
        row = (await self._session.execute(_HOLDER, {"form": form_id})).first()
        return None if row is None else FormHolder(**row._mapping)

    async def claim(
        self, done: Transition, form_id: str, owner_id: int, result: dict[str, Any]
    ) -> DeliveredForm | None:
        """Mark a form of one of ``owner_id``'s workers delivered with ``result``; ``None`` if it is not
        theirs to deliver (unknown, another's, already delivered, or taken back)."""
        values = {"form": form_id, "owner": owner_id, "new_result": result}
        row = (await self._session.execute(_claim_statement(done), values)).first()
        if row is None:
            return None
        return DeliveredForm(
            id=row.id,
            name=row.name,
            interrogation_id=row.interrogation_id,
            worker_id=str(row.worker_id),
            requester_id=int(row.user_id),
            reward_cents=int(row.reward_cents),
            charge_cents=int(row.charge_cents),
            started_at=float(row.started_at or 0.0),
        )

    async def count_delivery(self, worker_id: str, reward_cents: int, forms_per_second: float, weight: float) -> None:
        """Add a delivered form to an alchemist's figures: one fulfilment, its reward, and a sample of its speed
        (forms per second) into its moving average with ``weight``."""
        values = {"worker": worker_id, "reward": reward_cents, "sample": forms_per_second}
        values.update(keep=1 - weight, weight=weight)
        await self._session.execute(_DELIVERED, values)

    async def abort(
        self,
        back: Transition,
        faulted: Transition,
        form_ids: Sequence[str],
        max_aborts: int,
        deadline_before: float | None = None,
    ) -> list[AbortedForm]:
        """Take these forms back from their workers (only those past ``deadline_before``, if given): each waits
        again, or faults once aborted ``max_aborts`` times before."""
        if not form_ids:
            return []
        values = {
            "forms": sorted(set(form_ids)),
            "max_aborts": max_aborts,
            "deadline_before": deadline_before if deadline_before is not None else 0.0,
            "any_deadline": deadline_before is None,
        }
        rows = await self._session.execute(_abort_statement(back, faulted), values)
        return [AbortedForm(str(row.id), str(row.state), row.worker_id) for row in rows]

    async def past_deadline(self, now: float, batch: int) -> list[str]:
        """Ids of forms still processing whose lease ran out before ``now``, oldest first."""
        return list((await self._session.execute(_EXPIRED_IDS, {"now": now, "batch": batch})).scalars())

    async def ended_before(self, now: float, batch: int) -> list[tuple[str, str]]:
        """``(id, source key)`` of interrogations past their expiry."""
        rows = await self._session.execute(_ENDED, {"now": now, "batch": batch})
        return [(str(i), str(key)) for i, key in rows]

    async def forms_named(self, interrogation_ids: Sequence[str]) -> list[tuple[str, str]]:
        """``(form id, form name)`` of every form of these interrogations."""
        if not interrogation_ids:
            return []
        rows = await self._session.execute(_DONE_FORMS_OF, {"interrogations": list(interrogation_ids)})
        return [(str(i), str(name)) for i, name in rows]

    async def delete(self, interrogation_ids: Sequence[str]) -> None:
        """Delete these interrogations and their forms."""
        if interrogation_ids:
            values = {"interrogations": list(interrogation_ids)}
            await self._session.execute(_DELETE_FORMS, values)
            await self._session.execute(_DELETE, values)
