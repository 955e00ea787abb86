"""Kudos moved by people: transfers between users, awards and admin grants."""

from __future__ import annotations

import contextlib
import uuid

from openhorde.domain import accounts, audit
from openhorde.domain.accounts import Account
from openhorde.domain.kudos import ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.domain.queue.requests import outstanding_charges_cents
from openhorde.errors import (
    KudosAwardNotPositive,
    KudosTransferFromAnon,
    KudosTransferIdempotencyMismatch,
    KudosTransferNotEnough,
    KudosTransferNotPositive,
    KudosTransferToAnon,
    KudosTransferToSelf,
    NotAllowedAwards,
)
from openhorde.storage.store import Store


async def transfer(
    store: Store, sender: Account, target_name: str, amount: int, idempotency_key: str | None = None
) -> int:
    """Move ``amount`` kudos from ``sender`` to the user named ``name#id``; returns the amount moved.

    With an ``Idempotency-Key`` a retried transfer is recorded once; the same key with a
    different target or amount is refused.
    """
    if accounts.is_anonymous(sender):
        raise KudosTransferFromAnon("The anonymous user cannot transfer kudos.")
    if amount <= 0:
        raise KudosTransferNotPositive("The amount to transfer must be positive.")
    target = await accounts.find_by_display_name(store, target_name)
    if accounts.is_anonymous(target):
        raise KudosTransferToAnon("Kudos cannot be sent to the anonymous user.")
    if target.id == sender.id:
        raise KudosTransferToSelf("You cannot transfer kudos to yourself.")
    reference = f"{sender.id}:{idempotency_key}" if idempotency_key else str(uuid.uuid4())
    memo = f"{sender.id}->{target.id}:{amount}"
    previous = await store.ledger.memo_of(TransactionKind.TRANSFER, reference) if idempotency_key else None
    if previous is not None:
        if previous != memo:
            raise KudosTransferIdempotencyMismatch("This Idempotency-Key was used for a different transfer.")
        return amount
    # Both rows, in id order: two opposite transfers at once then wait for each other instead of deadlocking.
    balances = await store.accounts.lock([sender.id, target.id])
    available = balances[sender.id] - await outstanding_charges_cents(store, sender)
    cents = ledger.kudos_to_cents(amount)
    if available < cents:
        raise KudosTransferNotEnough(f"Not enough kudos: {ledger.cents_to_kudos(available)} available to transfer.")
    # A retry racing in with the same Idempotency-Key finds the first one recorded: nothing to do.
    with contextlib.suppress(ledger.DuplicateTransaction):
        await ledger.record(
            store,
            TransactionKind.TRANSFER,
            reference,
            [Posting(sender.id, -cents), Posting(target.id, cents)],
            memo=memo,
        )
    return amount


async def award(store: Store, awarder: Account, target_name: str, amount: int) -> int:
    """Mint ``amount`` kudos for a user; only admins may, and each award is in the ledger and the audit log.

    The reference lets user id 1 award instead; here the first self-registered account is user 1, so that
    would let whoever registers first mint without limit. User 1 has no power of its own.
    """
    if not awarder.is_admin:
        raise NotAllowedAwards("Only admins can award kudos.")
    if amount <= 0:
        raise KudosAwardNotPositive("The amount to award must be positive.")
    target = await accounts.find_by_display_name(store, target_name)
    if accounts.is_anonymous(target):
        raise KudosTransferToAnon("Kudos cannot be sent to the anonymous user.")
    cents = ledger.kudos_to_cents(amount)
    await ledger.record(
        store,
        TransactionKind.AWARD,
        str(uuid.uuid4()),
        [Posting(SystemAccount.MINT, -cents), Posting(target.id, cents)],
        memo=f"award by {awarder.id}",
    )
    await audit.record(store, awarder, "kudos.award", "user", target.id, {"amount": amount})
    return amount


async def grant(store: Store, user: Account, kudos: float, memo: str = "admin grant") -> None:
    """An admin's adjustment: mint kudos for a user (or burn them, when negative)."""
    ledger.check_amount(kudos)  # the command line passes any float, NaN and 1e300 included
    cents = ledger.kudos_to_cents(kudos)
    source = SystemAccount.MINT if cents > 0 else SystemAccount.BURN
    await ledger.record(
        store,
        TransactionKind.ADMIN,
        str(uuid.uuid4()),
        [Posting(source, -cents), Posting(user.id, cents)],
        memo=memo,
    )
