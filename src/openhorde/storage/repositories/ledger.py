"""The ledger repository: kudos transactions and their postings, the balances they move, escrow and history.

Kudos are money: every movement is one balanced transaction, its postings and the user balances it moves,
written together. ``record`` does that in one statement on PostgreSQL (data-modifying CTEs that lock the
users' rows in id order before writing them, as the submit's settlement does in ``deliveries.py``) and in
three on SQLite, whose one writer runs alone. ``(kind, reference)`` is unique: a second transaction under the
same pair inserts nothing (``ON CONFLICT DO NOTHING``) and raises ``DuplicateTransaction``, leaving the
caller's transaction usable without a savepoint.

``kudos_escrow`` says whose kudos the ledger's ``escrow`` system account holds; ``audit`` re-derives every
balance from the postings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import KudosEscrow, KudosPosting, KudosTransaction, User

_TRANSACTIONS = cast(Table, KudosTransaction.__table__)
_POSTINGS = cast(Table, KudosPosting.__table__)
_USERS = cast(Table, User.__table__)
_ESCROW = cast(Table, KudosEscrow.__table__)

ESCROW_ACCOUNT = "escrow"
"""The system account holding untrusted owners' rewards (``SystemAccount.ESCROW`` in the domain)."""


class DuplicateTransaction(Exception):
    """A transaction with this kind and reference was already recorded."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One posting of a transaction: ``amount_cents`` into a user's account or a system account (one of the two)."""

    user_id: int | None
    system_account: str | None
    amount_cents: int


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One transaction on a user's account: its net change of their balance (hundredths of a kudo)."""

    id: int
    created_at: float
    kind: str
    memo: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class Escrow:
    """A user's escrow: kudos held, earned and images delivered while untrusted, and releases so far."""

    held_cents: int = 0
    earned_cents: int = 0
    images: int = 0
    releases: int = 0


@dataclass(frozen=True, slots=True)
class LedgerAudit:
    """The ledger re-derived: what must be zero, empty or equal when everything balances."""

    total_cents: int
    """The sum of every posting."""
    unbalanced_transaction_ids: list[int]
    balance_mismatches: list[tuple[int, int, int]]
    """``(user_id, projected_cents, ledger_cents)`` of each user whose stored balance differs from the ledger."""
    escrow_held_cents: int
    """What the per-user escrow rows hold together."""
    escrow_account_cents: int
    """The balance of the ``escrow`` system account, from its postings."""


# PostgreSQL: the transaction, its postings and the balances in one statement. The users' rows are locked in id
# order before any is written (so two transactions moving the same users can't deadlock), and only when the
# transaction was inserted: a duplicate locks and writes nothing.
_RECORD_IN_ONE_STATEMENT = text(
    """WITH tx AS (
        INSERT INTO kudos_transactions (kind, reference, created_at, memo)
        VALUES (:tx_kind, :tx_reference, :tx_at, :tx_memo)
        ON CONFLICT (kind, reference) DO NOTHING RETURNING id),
    legs AS (
        INSERT INTO kudos_postings (transaction_id, user_id, system_account, amount_cents)
        SELECT tx.id, leg.user_id, leg.system_account, leg.amount
        FROM tx, unnest(CAST(:leg_users AS INTEGER[]), CAST(:leg_systems AS VARCHAR[]), CAST(:leg_amounts AS BIGINT[]))
            AS leg(user_id, system_account, amount)),
    locked AS (
        SELECT users.id FROM users, tx WHERE users.id = ANY(CAST(:user_ids AS INTEGER[]))
        ORDER BY users.id FOR UPDATE OF users),
    moved AS (
        UPDATE users SET kudos_cents = users.kudos_cents + delta.amount
        FROM locked, unnest(CAST(:user_ids AS INTEGER[]), CAST(:user_deltas AS BIGINT[])) AS delta(id, amount)
        WHERE users.id = locked.id AND delta.id = locked.id)
    SELECT id FROM tx"""
)
_INSERT_TRANSACTION = (
    sqlite.insert(_TRANSACTIONS)
    .values(
        kind=bindparam("tx_kind"),
        reference=bindparam("tx_reference"),
        created_at=bindparam("tx_at"),
        memo=bindparam("tx_memo"),
    )
    .on_conflict_do_nothing(index_elements=["kind", "reference"])
    .returning(_TRANSACTIONS.c.id)
)
_INSERT_POSTING = _POSTINGS.insert().values(
    transaction_id=bindparam("tx_id"),
    user_id=bindparam("leg_user"),
    system_account=bindparam("leg_system"),
    amount_cents=bindparam("leg_amount"),
)
_ADD_TO_BALANCE = (
    update(_USERS)
    .where(_USERS.c.id == bindparam("user"))
    .values(kudos_cents=_USERS.c.kudos_cents + bindparam("delta", type_=_USERS.c.kudos_cents.type))
)

_MEMO = select(_TRANSACTIONS.c.memo).where(
    _TRANSACTIONS.c.kind == bindparam("tx_kind"), _TRANSACTIONS.c.reference == bindparam("tx_reference")
)
_amount = _POSTINGS.c.amount_cents
_TOTALS_BY_KIND = (
    select(
        _TRANSACTIONS.c.kind,
        func.sum(case((_amount > 0, _amount), else_=0)),
        func.sum(case((_amount < 0, _amount), else_=0)),
    )
    .join(_TRANSACTIONS, _TRANSACTIONS.c.id == _POSTINGS.c.transaction_id)
    .where(_POSTINGS.c.user_id == bindparam("user_id"))
    .group_by(_TRANSACTIONS.c.kind)
)
# A transaction can touch one account twice (an owner's worker serving the owner's own request), so amounts
# are summed per transaction.
_HISTORY = (
    select(
        _TRANSACTIONS.c.id,
        _TRANSACTIONS.c.created_at,
        _TRANSACTIONS.c.kind,
        _TRANSACTIONS.c.memo,
        func.sum(_amount),
    )
    .join(_TRANSACTIONS, _TRANSACTIONS.c.id == _POSTINGS.c.transaction_id)
    .where(_POSTINGS.c.user_id == bindparam("user_id"))
    .group_by(_TRANSACTIONS.c.id, _TRANSACTIONS.c.created_at, _TRANSACTIONS.c.kind, _TRANSACTIONS.c.memo)
    .order_by(_TRANSACTIONS.c.id.desc())
    .offset(bindparam("skip"))
    .limit(bindparam("take"))
)
_TRANSACTION_COUNT = select(func.count(func.distinct(_POSTINGS.c.transaction_id))).where(
    _POSTINGS.c.user_id == bindparam("user_id")
)

_ESCROW_OF = select(_ESCROW.c.held_cents, _ESCROW.c.earned_cents, _ESCROW.c.images, _ESCROW.c.releases).where(
    _ESCROW.c.user_id == bindparam("owner")
)


def _add_to_escrow(insert: Any) -> Any:
    """Add to a user's escrow, creating the row on first use (one statement, race-free) in ``insert``'s dialect."""
    statement = insert(_ESCROW).values(
        user_id=bindparam("owner"),
        held_cents=bindparam("held"),
        earned_cents=bindparam("earned"),
        images=bindparam("delivered"),
        releases=0,
    )
    return statement.on_conflict_do_update(
        index_elements=[_ESCROW.c.user_id],
        set_={
            "held_cents": _ESCROW.c.held_cents + statement.excluded.held_cents,
            "earned_cents": _ESCROW.c.earned_cents + statement.excluded.earned_cents,
            "images": _ESCROW.c.images + statement.excluded.images,
        },
    )


_ADD_TO_ESCROW = {True: _add_to_escrow(sqlite.insert), False: _add_to_escrow(postgresql.insert)}
_CLAIM_RELEASE = (
    update(_ESCROW)
    .where(
        _ESCROW.c.user_id == bindparam("owner"),
        _ESCROW.c.releases == bindparam("seen_releases"),
        _ESCROW.c.held_cents >= bindparam("amount"),
    )
    .values(held_cents=_ESCROW.c.held_cents - bindparam("amount"), releases=_ESCROW.c.releases + 1)
)

_per_user = (
    select(_POSTINGS.c.user_id, func.sum(_amount).label("total"))
    .where(_POSTINGS.c.user_id.is_not(None))
    .group_by(_POSTINGS.c.user_id)
    .subquery()
)
_derived = func.coalesce(_per_user.c.total, 0)
_AUDIT_SUMS = select(
    select(func.coalesce(func.sum(_amount), 0)).scalar_subquery(),
    select(func.coalesce(func.sum(_ESCROW.c.held_cents), 0)).scalar_subquery(),
    select(func.coalesce(func.sum(_amount), 0)).where(_POSTINGS.c.system_account == ESCROW_ACCOUNT).scalar_subquery(),
)
_UNBALANCED = select(_POSTINGS.c.transaction_id).group_by(_POSTINGS.c.transaction_id).having(func.sum(_amount) != 0)
_MISMATCHES = (
    select(_USERS.c.id, _USERS.c.kudos_cents, _derived)
    .outerjoin(_per_user, _per_user.c.user_id == _USERS.c.id)
    .where(_USERS.c.kudos_cents != _derived)
)


class LedgerRepository:
    """Every statement about ``kudos_transactions``, ``kudos_postings`` and ``kudos_escrow``, and the balance
    updates of transactions recorded here (the submit's settlement writes its own: ``deliveries.py``)."""

    __slots__ = ("_postgres", "_session")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._postgres = not is_sqlite

    async def record(self, kind: str, reference: str, now: float, memo: str, legs: Sequence[Leg]) -> int:
        """Insert one transaction and its ``legs``, and move the balances of the users they touch; returns its id.

        The legs must sum to zero (the domain checks it). ``DuplicateTransaction`` if ``(kind, reference)`` was
        recorded before: then nothing is written and the caller's transaction stays usable.
        """
        deltas: dict[int, int] = {}
        for leg in legs:
            if leg.user_id is not None:
                deltas[leg.user_id] = deltas.get(leg.user_id, 0) + leg.amount_cents
        user_ids = sorted(deltas)  # a fixed order (by user id), so concurrent transactions can't deadlock
        values: dict[str, Any] = {"tx_kind": kind, "tx_reference": reference, "tx_at": now, "tx_memo": memo}
        if self._postgres:
            values |= {
                "leg_users": [leg.user_id for leg in legs],
                "leg_systems": [leg.system_account for leg in legs],
                "leg_amounts": [leg.amount_cents for leg in legs],
                "user_ids": user_ids,
                "user_deltas": [deltas[user_id] for user_id in user_ids],
            }
            transaction_id = (await self._session.execute(_RECORD_IN_ONE_STATEMENT, values)).scalar()
        else:
            transaction_id = (await self._session.execute(_INSERT_TRANSACTION, values)).scalar()
        if transaction_id is None:
            raise DuplicateTransaction(f"{kind}:{reference}")
        if not self._postgres:
            postings = [
                {"tx_id": transaction_id, "leg_user": leg.user_id, "leg_system": leg.system_account,
                 "leg_amount": leg.amount_cents}
                for leg in legs
            ]  # fmt: skip
            await self._session.execute(_INSERT_POSTING, postings)
            if user_ids:
                balances = [{"user": user_id, "delta": deltas[user_id]} for user_id in user_ids]
                await self._session.execute(_ADD_TO_BALANCE, balances)
        return int(transaction_id)

    async def memo_of(self, kind: str, reference: str) -> str | None:
        """The memo of the transaction recorded under ``(kind, reference)``; ``None`` if there is none."""
        memo = (await self._session.execute(_MEMO, {"tx_kind": kind, "tx_reference": reference})).scalar()
        return None if memo is None else str(memo)

    async def totals_by_kind(self, user_id: int) -> dict[str, int]:
        """A user's credits (``+kind``) and debits (``-kind``) per transaction kind, in hundredths of a kudo."""
        totals: dict[str, int] = {}
        for kind, credits, debits in await self._session.execute(_TOTALS_BY_KIND, {"user_id": user_id}):
            totals["+" + kind] = int(credits or 0)
            totals["-" + kind] = int(debits or 0)
        return totals

    async def history(self, user_id: int, offset: int, limit: int) -> list[HistoryLine]:
        """A user's transactions, newest first, each with its net amount on the user's account."""
        rows = await self._session.execute(_HISTORY, {"user_id": user_id, "skip": offset, "take": limit})
        return [HistoryLine(int(i), float(at), str(kind), str(memo), int(total)) for i, at, kind, memo, total in rows]

    async def transaction_count(self, user_id: int) -> int:
        """How many transactions touched a user's account."""
        return int((await self._session.execute(_TRANSACTION_COUNT, {"user_id": user_id})).scalar() or 0)

    async def escrow_of(self, user_id: int) -> Escrow:
        """A user's escrow; zeros when the user has none."""
        row = (await self._session.execute(_ESCROW_OF, {"owner": user_id})).first()
        return Escrow() if row is None else Escrow(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    async def add_to_escrow(self, user_id: int, held_cents: int, earned_cents: int, images: int) -> None:
        """Add to a user's escrow and earnings, creating the row on first use (one statement, race-free)."""
        values = {"owner": user_id, "held": held_cents, "earned": earned_cents, "delivered": images}
        await self._session.execute(_ADD_TO_ESCROW[not self._postgres], values)

    async def claim_release(self, user_id: int, amount_cents: int, seen_releases: int) -> bool:
        """Take ``amount_cents`` out of a user's escrow if no other release came first (``releases`` unchanged)."""
        values = {"owner": user_id, "amount": amount_cents, "seen_releases": seen_releases}
        result = await self._session.execute(_CLAIM_RELEASE, values)
        return bool(getattr(result, "rowcount", 0))

    async def audit(self) -> LedgerAudit:
        """Re-derive every balance from the postings, and the escrow account from the escrow rows."""
        total, held, escrow_account = (await self._session.execute(_AUDIT_SUMS)).one()
        unbalanced = [int(i) for i in (await self._session.execute(_UNBALANCED)).scalars()]
        mismatches = [(int(a), int(b), int(c)) for a, b, c in await self._session.execute(_MISMATCHES)]
        return LedgerAudit(int(total), unbalanced, mismatches, int(held), int(escrow_account))
