"""A user's kudos history: the ledger's transactions on their account, for the account page."""

from __future__ import annotations

from dataclasses import dataclass

from openhorde.domain.accounts import Account, is_anonymous
from openhorde.domain.kudos.ledger import cents_to_kudos
from openhorde.domain.paging import Page, offset_of
from openhorde.errors import AnonForbidden
from openhorde.storage.store import Store

PAGE_SIZE = 50


@dataclass(frozen=True)
class HistoryEntry:
    """One transaction as the account holder sees it: the net change of their balance."""

    id: int
    created_at: float
    kind: str
    memo: str
    amount: float


async def history(store: Store, user: Account, page: int) -> Page[HistoryEntry]:
    """One page of the user's transactions, newest first."""
    if is_anonymous(user):
        raise AnonForbidden("The anonymous account has no history of its own; register or sign in with your API key.")
    total = await store.ledger.transaction_count(user.id)
    lines = await store.ledger.history(user.id, offset_of(page, PAGE_SIZE), PAGE_SIZE)
    entries = [HistoryEntry(n.id, n.created_at, n.kind, n.memo, cents_to_kudos(n.amount_cents)) for n in lines]
    return Page.of(entries, page, total, PAGE_SIZE)
