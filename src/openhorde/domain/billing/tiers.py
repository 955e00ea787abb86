"""Tiers of an account: Free, Supporter (a monthly tier) and Credits (kudos bought in bulk).

- **Free**: everyone; the queue priority is the kudos balance (``requests.create_request``).
- **Supporter**: while ``supporters.until`` is in the future, requests get
  ``settings.supporter_priority_boost`` added to their priority, and the account gets
  ``settings.supporter_monthly_kudos`` once per calendar month (UTC). The grant is made by the
  first of: the month's Stripe payment (``invoice.paid``), the subscription's checkout, an
  admin's grant, or the supporter's first request of the month. Its ledger reference
  ``supporter:{user}:{YYYY-MM}`` makes it happen once, so no periodic duty is needed.
- **Credits**: kudos bought (a Stripe one-off payment or an admin's grant), recorded in the
  ledger as ``credits`` with the payment's reference, once per reference.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.config import Settings
from openhorde.domain import audit
from openhorde.domain.accounts import is_anonymous
from openhorde.domain.kudos import ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.errors import AnonForbidden, KudosValidationError, NotAdmin
from openhorde.storage import billing_queries, ledger_queries
from openhorde.storage.tables import User

SUPPORTER_MONTH_SECONDS = 30 * 24 * 3600
"""Length of one month of the Supporter tier granted by an admin or a checkout, in seconds."""


class Tier(StrEnum):
    """What an account pays for; shown as ``tier`` by ``/find_user``."""

    FREE = "free"
    SUPPORTER = "supporter"
    CREDITS = "credits"


@dataclass(frozen=True)
class TierInfo:
    """An account's tier, until when it is a supporter (epoch seconds) and the kudos it has bought."""

    tier: Tier
    supporter_until: float | None
    credits_bought: float


def month_key(moment: float) -> str:
    """The calendar month (UTC) of an instant, ``YYYY-MM``: the period of the monthly grant."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m")


def is_active(until: float | None, now: float) -> bool:
    """Whether a supporter tier lasting ``until`` is active at ``now``."""
    return until is not None and until > now


async def tier_of(session: AsyncSession, user: User, now: float | None = None) -> TierInfo:
    """The account's tier: Supporter while active, else Credits if it ever bought kudos, else Free."""
    moment = now or time.time()
    until = await billing_queries.supporter_until(session, user.id)
    totals = await ledger_queries.user_totals_by_kind(session, user.id)
    bought = totals.get("+" + TransactionKind.CREDITS, 0) / 100
    tier = Tier.SUPPORTER if is_active(until, moment) else Tier.CREDITS if bought > 0 else Tier.FREE
    return TierInfo(tier=tier, supporter_until=until if until else None, credits_bought=bought)


async def monthly_grant(session: AsyncSession, settings: Settings, user_id: int, period: str, now: float) -> bool:
    """Grant a supporter's monthly kudos for ``period`` (``YYYY-MM``) unless already granted; True if granted."""
    cents = ledger.kudos_to_cents(settings.supporter_monthly_kudos)
    reference = f"supporter:{user_id}:{period}"
    if cents <= 0 or await ledger_queries.transaction_exists(session, TransactionKind.SUPPORTER, reference):
        return False
    # Two requests of the same supporter racing at the start of a month: the second finds it recorded.
    with contextlib.suppress(ledger.DuplicateTransaction):
        await ledger.record(
            session,
            TransactionKind.SUPPORTER,
            reference,
            [Posting(SystemAccount.MINT, -cents), Posting(user_id, cents)],
            memo=f"supporter grant {period}",
            now=now,
            guard_duplicates=True,
        )
        return True
    return False


async def priority_boost(session: AsyncSession, settings: Settings, user: User, now: float) -> float:
    """Queue priority to add to this user's new request: the boost while a supporter (0 otherwise).

    A supporter's first request of a month also makes that month's grant, if no event made it yet.
    """
    if is_anonymous(user):
        return 0.0
    until = await billing_queries.supporter_until(session, user.id)
    if not is_active(until, now):
        return 0.0
    await monthly_grant(session, settings, user.id, month_key(now), now)
    return settings.supporter_priority_boost


async def extend_supporter(
    session: AsyncSession, settings: Settings, user_id: int, until: float, now: float, period: str
) -> float:
    """Make the user a supporter at least until ``until`` and grant ``period``'s kudos; returns the new end."""
    row = await billing_queries.supporter_row(session, user_id, now)
    row.until = max(row.until, until)
    row.updated_at = now
    await session.flush()  # the session does not autoflush: make the new end visible to queries
    await monthly_grant(session, settings, user_id, period, now)
    return row.until


async def end_supporter(session: AsyncSession, user_id: int, now: float) -> bool:
    """End the user's Supporter tier now; False if it was not active."""
    row = await billing_queries.supporter_of(session, user_id, lock=True)
    if row is None or not is_active(row.until, now):
        return False
    row.until = now
    row.updated_at = now
    await session.flush()
    return True


def _check_admin(actor: User | None, target: User) -> None:
    """``actor`` None is the command line, which works on the database directly."""
    if actor is not None and not actor.is_admin:
        raise NotAdmin("Only admins can change a user's tier or grant credits.")
    if is_anonymous(target):
        raise AnonForbidden("The anonymous user has no tier.", rc="AnonForbiddenUserMod")


async def grant_supporter(
    session: AsyncSession, settings: Settings, actor: User | None, target: User, months: int, now: float | None = None
) -> TierInfo:
    """An admin makes ``target`` a supporter for ``months`` more months (from now, or from the current end)."""
    moment = now or time.time()
    _check_admin(actor, target)
    current = await billing_queries.supporter_until(session, target.id)
    start = current if is_active(current, moment) and current is not None else moment
    until = await extend_supporter(
        session, settings, target.id, start + months * SUPPORTER_MONTH_SECONDS, moment, month_key(moment)
    )
    details = {"months": months, "until": until}
    await audit.record(session, actor, "user.supporter_on", "user", target.id, details, now=moment)
    return await tier_of(session, target, moment)


async def revoke_supporter(
    session: AsyncSession, actor: User | None, target: User, now: float | None = None
) -> TierInfo:
    """An admin ends ``target``'s Supporter tier now (kudos already granted stay)."""
    moment = now or time.time()
    _check_admin(actor, target)
    ended = await end_supporter(session, target.id, moment)
    await audit.record(session, actor, "user.supporter_off", "user", target.id, {"was_active": ended}, now=moment)
    return await tier_of(session, target, moment)


async def add_credits(session: AsyncSession, user_id: int, kudos: float, reference: str, memo: str, now: float) -> bool:
    """Record ``kudos`` bought by the user under ``reference``; False if that reference was recorded before."""
    ledger.check_amount(kudos)
    cents = ledger.kudos_to_cents(kudos)
    if cents <= 0:
        raise KudosValidationError("Credits must be a positive number of kudos.", rc="KudosAwardNotPositive")
    if await ledger_queries.transaction_exists(session, TransactionKind.CREDITS, reference):
        return False
    try:
        await ledger.record(
            session,
            TransactionKind.CREDITS,
            reference,
            [Posting(SystemAccount.MINT, -cents), Posting(user_id, cents)],
            memo=memo,
            now=now,
            guard_duplicates=True,
        )
    except ledger.DuplicateTransaction:
        return False
    return True


async def grant_credits(
    session: AsyncSession,
    actor: User | None,
    target: User,
    kudos: float,
    reference: str,
    now: float | None = None,
) -> bool:
    """An admin records kudos bought outside Stripe (an invoice, a bank transfer) once per ``reference``."""
    moment = now or time.time()
    _check_admin(actor, target)
    memo = f"credits by admin {reference}"
    recorded = await add_credits(session, target.id, kudos, f"admin:{reference}", memo, moment)
    if recorded:
        details = {"kudos": kudos, "reference": reference}
        await audit.record(session, actor, "user.credits", "user", target.id, details, now=moment)
    return recorded
