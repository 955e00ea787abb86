"""A user's kudos history: the ledger's transactions on their account, for the account page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain.accounts import is_anonymous
from openhorde.domain.kudos.ledger import cents_to_kudos
from openhorde.domain.paging import Page, offset_of
from openhorde.errors import AnonForbidden
from openhorde.storage import ledger_queries
from openhorde.storage.tables import User

PAGE_SIZE = 50


@dataclass(frozen=True)
class HistoryEntry:
    """One transaction as the account holder sees it: the net change of their balance."""

    id: int
    created_at: float
    kind: str
    memo: str
    amount: float


async def history(session: AsyncSession, user: User, page: int) -> Page[HistoryEntry]:
    """One page of the user's transactions, newest first."""
    if is_anonymous(user):
        raise AnonForbidden("The anonymous account has no history of its own; register or sign in with your API key.")
    total = await ledger_queries.user_transaction_count(session, user.id)
    rows = await ledger_queries.user_history(session, user.id, offset_of(page, PAGE_SIZE), PAGE_SIZE)
    entries = [HistoryEntry(i, at, kind, memo, cents_to_kudos(cents)) for i, at, kind, memo, cents in rows]
    return Page.of(entries, page, total, PAGE_SIZE)
