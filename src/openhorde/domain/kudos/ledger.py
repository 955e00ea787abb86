"""Double-entry kudos ledger: every movement is a balanced transaction.

Balances are kept on ``users.kudos_cents`` as a projection updated in the same database
transaction as the postings, so they can always be re-derived from the ledger
(``check_ledger``). System accounts: ``mint`` issues kudos (rewards, grants, awards) and
``burn`` destroys spent kudos; they have no stored balance, only postings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from openhorde.errors import KudosValidationError
from openhorde.storage.repositories.ledger import DuplicateTransaction as DuplicateTransaction
from openhorde.storage.repositories.ledger import Leg
from openhorde.storage.store import Store

__all__ = ["DuplicateTransaction", "LedgerReport", "Posting", "SystemAccount", "TransactionKind"]


class SystemAccount(StrEnum):
    """Accounts that belong to the horde itself."""

    MINT = "mint"
    BURN = "burn"
    ESCROW = "escrow"  # untrusted owners' held rewards; whose they are is in kudos_escrow (part D2)


class TransactionKind(StrEnum):
    """Why kudos moved."""

    GENERATION = "generation"
    INTERROGATION = "interrogation"  # a form an alchemist delivered
    ADMIN = "admin"
    TRANSFER = "transfer"
    AWARD = "award"
    UPTIME = "uptime"  # a worker's reward per interval online (part D2)
    ESCROW_RELEASE = "escrow_release"  # an owner's escrow paid out on becoming trusted (part D2)
    SUPPORTER = "supporter"  # the Supporter tier's monthly grant (part D1)
    CREDITS = "credits"  # kudos bought: a Stripe one-off payment or an admin's credit grant (part D1)
    STYLE = "style"  # a style's owner's reward when another's request uses it


@dataclass(frozen=True)
class Posting:
    """One leg of a transaction: ``amount_cents`` (hundredths of a kudo) into a user or system account."""

    account: int | SystemAccount
    amount_cents: int


MAX_KUDOS_AMOUNT = 1_000_000_000_000
"""Largest kudos amount one admin change, award, grant or purchase may move, either way: keeps every balance far
inside a 64-bit column of cents (about 9.2e16 kudos)."""


def check_amount(kudos: float) -> None:
    """Refuse (``KudosValidationError``) an amount that is not a finite number of at most ``MAX_KUDOS_AMOUNT``."""
    if not math.isfinite(kudos) or abs(kudos) > MAX_KUDOS_AMOUNT:
        raise KudosValidationError(f"A kudos amount must be a number from -{MAX_KUDOS_AMOUNT} to {MAX_KUDOS_AMOUNT}.")


def kudos_to_cents(kudos: float) -> int:
    """Kudos as hundredths, rounded to the nearest hundredth."""
    return round(kudos * 100)


def cents_to_kudos(cents: int) -> float:
    """Hundredths of a kudo as kudos."""
    return cents / 100


async def record(
    store: Store,
    kind: TransactionKind,
    reference: str,
    postings: Sequence[Posting],
    memo: str = "",
    now: float | None = None,
) -> None:
    """Record one balanced transaction and update the user balances it touches (one statement on PostgreSQL).

    Legs of zero are dropped. Raises ``ValueError`` if the legs do not sum to zero and
    ``DuplicateTransaction`` if ``(kind, reference)`` was recorded before; then nothing is written and the
    caller's transaction goes on.
    """
    legs = [p for p in postings if p.amount_cents != 0]
    if sum(p.amount_cents for p in legs) != 0:
        raise ValueError(f"unbalanced kudos transaction {kind}:{reference}: {legs}")
    if not legs:
        return
    rows = [
        Leg(None, str(p.account), p.amount_cents)
        if isinstance(p.account, SystemAccount)
        else Leg(p.account, None, p.amount_cents)
        for p in legs
    ]
    await store.ledger.record(kind, reference, now or time.time(), memo, rows)


@dataclass(frozen=True)
class LedgerReport:
    """Result of re-deriving the ledger: empty lists and a zero sum mean everything balances."""

    total_cents: int
    unbalanced_transaction_ids: list[int]
    balance_mismatches: list[tuple[int, int, int]]
    escrow_held_cents: int = 0
    """What the per-user escrow rows hold together; must equal ``escrow_account_cents``."""
    escrow_account_cents: int = 0
    """The balance of the ledger's ``escrow`` system account, from its postings."""

    @property
    def ok(self) -> bool:
        """Whether the ledger balances, every user balance equals its postings, and escrow matches its account."""
        return (
            self.total_cents == 0
            and not self.unbalanced_transaction_ids
            and not self.balance_mismatches
            and self.escrow_held_cents == self.escrow_account_cents
        )


async def check_ledger(store: Store) -> LedgerReport:
    """Re-derive every balance from the postings and compare with the stored projections."""
    audit = await store.ledger.audit()
    return LedgerReport(
        total_cents=audit.total_cents,
        unbalanced_transaction_ids=audit.unbalanced_transaction_ids,
        balance_mismatches=audit.balance_mismatches,
        escrow_held_cents=audit.escrow_held_cents,
        escrow_account_cents=audit.escrow_account_cents,
    )
