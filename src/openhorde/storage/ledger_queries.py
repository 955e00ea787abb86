"""Named queries of the kudos ledger."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import KudosPosting, KudosTransaction, User


class DuplicateTransaction(Exception):
    """A transaction with this kind and reference was already recorded."""


_LOCK_USERS = (
    select(User.id, User.kudos_cents)
    .where(User.id.in_(bindparam("user_ids", expanding=True)))
    .order_by(User.id)
    .with_for_update()
)


async def lock_users(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, int]:
    """Lock these users' rows (PostgreSQL) until the transaction ends; returns their balances in hundredths.

    Whoever checks a balance or a per-user limit (queued images, shared keys, invited workers) and then writes
    takes this lock first, so the check still holds at the write and parallel calls take turns. Rows are
    locked in id order, so two transactions locking the same users can't deadlock. On SQLite every write
    transaction already runs alone (``BEGIN IMMEDIATE``).
    """
    rows = await session.execute(_LOCK_USERS, {"user_ids": sorted(set(user_ids))})
    return {int(user_id): int(cents) for user_id, cents in rows}


_INSERT_TRANSACTION = (
    insert(KudosTransaction)
    .values(
        kind=bindparam("kind"),
        reference=bindparam("reference"),
        created_at=bindparam("created_at"),
        memo=bindparam("memo"),
    )
    .returning(KudosTransaction.id)
)


async def insert_transaction(
    session: AsyncSession,
    kind: str,
    reference: str,
    created_at: float,
    memo: str,
    postings: Sequence[tuple[int | None, str | None, int]],
    guard_duplicates: bool = False,
) -> int:
    """Insert one transaction and its ``(user_id, system_account, amount_cents)`` postings; return its id.

    With ``guard_duplicates`` the insert runs in a savepoint, so an existing ``(kind, reference)``
    raises ``DuplicateTransaction`` and leaves the caller's transaction usable. Callers that
    already own the reference exclusively (a job they just claimed) skip the savepoint.
    """
    values = {"kind": kind, "reference": reference, "created_at": created_at, "memo": memo}
    try:
        if guard_duplicates:
            async with session.begin_nested():
                transaction_id = await session.scalar(_INSERT_TRANSACTION, values)
        else:
            transaction_id = await session.scalar(_INSERT_TRANSACTION, values)
    except IntegrityError as exc:
        raise DuplicateTransaction(f"{kind}:{reference}") from exc
    assert isinstance(transaction_id, int)
    await session.execute(
        insert(KudosPosting),
        [
            {
                "transaction_id": transaction_id,
                "user_id": user_id,
                "system_account": system,
                "amount_cents": cents,
            }
            for user_id, system, cents in postings
        ],
    )
    return transaction_id


_ADD_TO_BALANCE = (
    update(User)
    .where(User.id == bindparam("user_id"))
    .values(kudos_cents=User.kudos_cents + bindparam("amount_cents"))
    .execution_options(synchronize_session=False)
)


async def add_to_balance(session: AsyncSession, user_id: int, amount_cents: int) -> None:
    """Move a user's balance projection by ``amount_cents`` (no lock held beyond the row update)."""
    await session.execute(_ADD_TO_BALANCE, {"user_id": user_id, "amount_cents": amount_cents})


async def transaction_exists(session: AsyncSession, kind: str, reference: str) -> bool:
    """Whether a transaction with this kind and reference is recorded."""
    found = await session.scalar(
        select(KudosTransaction.id).where(KudosTransaction.kind == kind, KudosTransaction.reference == reference)
    )
    return found is not None


async def sum_of_all_postings(session: AsyncSession) -> int:
    """Sum of every posting in hundredths of a kudo; zero when the ledger balances."""
    return int(await session.scalar(select(func.coalesce(func.sum(KudosPosting.amount_cents), 0))) or 0)


async def unbalanced_transactions(session: AsyncSession) -> list[int]:
    """Ids of transactions whose postings do not sum to zero."""
    rows = await session.scalars(
        select(KudosPosting.transaction_id)
        .group_by(KudosPosting.transaction_id)
        .having(func.sum(KudosPosting.amount_cents) != 0)
    )
    return list(rows)


async def balance_mismatches(session: AsyncSession) -> list[tuple[int, int, int]]:
    """``(user_id, projected_cents, ledger_cents)`` for every user whose balance differs from the ledger."""
    ledger = (
        select(KudosPosting.user_id, func.sum(KudosPosting.amount_cents).label("total"))
        .where(KudosPosting.user_id.is_not(None))
        .group_by(KudosPosting.user_id)
        .subquery()
    )
    derived = func.coalesce(ledger.c.total, 0)
    rows = await session.execute(
        select(User.id, User.kudos_cents, derived)
        .outerjoin(ledger, ledger.c.user_id == User.id)
        .where(User.kudos_cents != derived)
    )
    return [(int(a), int(b), int(c)) for a, b, c in rows]


async def user_totals_by_kind(session: AsyncSession, user_id: int) -> dict[str, int]:
    """A user's credits (``+kind``) and debits (``-kind``) per transaction kind, in hundredths of a kudo."""
    amount = KudosPosting.amount_cents
    rows = await session.execute(
        select(
            KudosTransaction.kind,
            func.sum(case((amount > 0, amount), else_=0)),
            func.sum(case((amount < 0, amount), else_=0)),
        )
        .join(KudosTransaction, KudosTransaction.id == KudosPosting.transaction_id)
        .where(KudosPosting.user_id == user_id)
        .group_by(KudosTransaction.kind)
    )
    totals: dict[str, int] = {}
    for kind, credits, debits in rows:
        totals["+" + kind] = int(credits or 0)
        totals["-" + kind] = int(debits or 0)
    return totals


async def transaction_memo(session: AsyncSession, kind: str, reference: str) -> str | None:
    """The memo of the transaction with this kind and reference, if recorded."""
    return await session.scalar(
        select(KudosTransaction.memo).where(KudosTransaction.kind == kind, KudosTransaction.reference == reference)
    )


async def user_history(
    session: AsyncSession, user_id: int, offset: int, limit: int
) -> list[tuple[int, float, str, str, int]]:
    """A user's transactions, newest first: ``(id, created_at, kind, memo, net amount in hundredths)``.

    A transaction can touch one account twice (an owner's worker serving the owner's own request), so
    amounts are summed per transaction.
    """
    rows = await session.execute(
        select(
            KudosTransaction.id,
            KudosTransaction.created_at,
            KudosTransaction.kind,
            KudosTransaction.memo,
            func.sum(KudosPosting.amount_cents),
        )
        .join(KudosTransaction, KudosTransaction.id == KudosPosting.transaction_id)
        .where(KudosPosting.user_id == user_id)
        .group_by(KudosTransaction.id, KudosTransaction.created_at, KudosTransaction.kind, KudosTransaction.memo)
        .order_by(KudosTransaction.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(int(i), float(at), str(kind), str(memo), int(total)) for i, at, kind, memo, total in rows]


async def user_transaction_count(session: AsyncSession, user_id: int) -> int:
    """How many transactions touched a user's account."""
    query = select(func.count(func.distinct(KudosPosting.transaction_id))).where(KudosPosting.user_id == user_id)
    return int(await session.scalar(query) or 0)
