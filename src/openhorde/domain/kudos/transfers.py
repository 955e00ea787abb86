"""Kudos moved by people: transfers between users, awards and admin grants."""

from __future__ import annotations

import contextlib
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain import accounts, audit
from openhorde.domain.kudos import ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.domain.queue.requests import outstanding_charges_cents
from openhorde.errors import KudosValidationError, NotAllowedAwards
from openhorde.storage import ledger_queries
from openhorde.storage.tables import User


async def transfer(
    session: AsyncSession, sender: User, target_name: str, amount: int, idempotency_key: str | None = None
) -> int:
    """Move ``amount`` kudos from ``sender`` to the user named ``name#id``; returns the amount moved.

    With an ``Idempotency-Key`` a retried transfer is recorded once; the same key with a
    different target or amount is refused.
    """
    if accounts.is_anonymous(sender):
        raise KudosValidationError("The anonymous user cannot transfer kudos.", rc="KudosTransferFromAnon")
    if amount <= 0:
        raise KudosValidationError("The amount to transfer must be positive.", rc="KudosTransferNotPositive")
    target = await accounts.find_by_display_name(session, target_name)
    if accounts.is_anonymous(target):
        raise KudosValidationError("Kudos cannot be sent to the anonymous user.", rc="KudosTransferToAnon")
    if target.id == sender.id:
        raise KudosValidationError("You cannot transfer kudos to yourself.", rc="KudosTransferToSelf")
    reference = f"{sender.id}:{idempotency_key}" if idempotency_key else str(uuid.uuid4())
    memo = f"{sender.id}->{target.id}:{amount}"
    if idempotency_key and await ledger_queries.transaction_exists(session, TransactionKind.TRANSFER, reference):
        previous = await ledger_queries.transaction_memo(session, TransactionKind.TRANSFER, reference)
        if previous != memo:
            raise KudosValidationError(
                "This Idempotency-Key was used for a different transfer.",
                rc="KudosTransferIdempotencyMismatch",
            )
        return amount
    # Both rows, in id order: two opposite transfers at once then wait for each other instead of deadlocking.
    balances = await ledger_queries.lock_users(session, [sender.id, target.id])
    available = balances[sender.id] - await outstanding_charges_cents(session, sender)
    cents = ledger.kudos_to_cents(amount)
    if available < cents:
        raise KudosValidationError(
            f"Not enough kudos: {ledger.cents_to_kudos(available)} available to transfer.",
            rc="KudosTransferNotEnough",
        )
    # A retry racing in with the same Idempotency-Key finds the first one recorded: nothing to do.
    with contextlib.suppress(ledger.DuplicateTransaction):
        await ledger.record(
            session,
            TransactionKind.TRANSFER,
            reference,
            [Posting(sender.id, -cents), Posting(target.id, cents)],
            memo=memo,
            guard_duplicates=True,
        )
    return amount


async def award(session: AsyncSession, awarder: User, target_name: str, amount: int) -> int:
    """Mint ``amount`` kudos for a user; only admins may, and each award is in the ledger and the audit log.

    The reference lets user id 1 award instead; here the first self-registered account is user 1, so that
    would let whoever registers first mint without limit. User 1 has no power of its own.
    """
    if not awarder.is_admin:
        raise NotAllowedAwards("Only admins can award kudos.")
    if amount <= 0:
        raise KudosValidationError("The amount to award must be positive.", rc="KudosAwardNotPositive")
    target = await accounts.find_by_display_name(session, target_name)
    if accounts.is_anonymous(target):
        raise KudosValidationError("Kudos cannot be sent to the anonymous user.", rc="KudosTransferToAnon")
    cents = ledger.kudos_to_cents(amount)
    await ledger.record(
        session,
        TransactionKind.AWARD,
        str(uuid.uuid4()),
        [Posting(SystemAccount.MINT, -cents), Posting(target.id, cents)],
        memo=f"award by {awarder.id}",
    )
    await audit.record(session, awarder, "kudos.award", "user", target.id, {"amount": amount})
    return amount


async def grant(session: AsyncSession, user: User, kudos: float, memo: str = "admin grant") -> None:
    """An admin's adjustment: mint kudos for a user (or burn them, when negative)."""
    ledger.check_amount(kudos)  # the command line passes any float, NaN and 1e300 included
    cents = ledger.kudos_to_cents(kudos)
    source = SystemAccount.MINT if cents > 0 else SystemAccount.BURN
    await ledger.record(
        session,
        TransactionKind.ADMIN,
        str(uuid.uuid4()),
        [Posting(source, -cents), Posting(user.id, cents)],
        memo=memo,
    )
