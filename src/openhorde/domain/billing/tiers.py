"""Tiers of an account: Free, Supporter (a monthly tier) and Credits (kudos bought in bulk).

- **Free**: everyone; the queue priority is the kudos balance (``requests.create_request``).
- **Supporter**: while ``supporters.until`` is in the future, requests get
  ``settings.economy.supporter_priority_boost`` added to their priority, and the account gets
  ``settings.economy.supporter_monthly_kudos`` once per calendar month (UTC). The grant is made by the
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

from openhorde.config import Settings
from openhorde.domain import audit
from openhorde.domain.accounts import Account, is_anonymous
from openhorde.domain.kudos import ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.errors import AnonForbiddenUserMod, KudosAwardNotPositive, NotAdmin
from openhorde.storage.store import Store

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


async def tier_of(store: Store, user: Account, now: float | None = None) -> TierInfo:
    """The account's tier: Supporter while active, else Credits if it ever bought kudos, else Free."""
    moment = now or time.time()
    facts = await store.billing.tier(user.id, TransactionKind.CREDITS)
    until, bought = facts.supporter_until, facts.credits_bought_cents / 100
    tier = Tier.SUPPORTER if is_active(until, moment) else Tier.CREDITS if bought > 0 else Tier.FREE
    return TierInfo(tier=tier, supporter_until=until if until else None, credits_bought=bought)


async def monthly_grant(store: Store, settings: Settings, user_id: int, period: str, now: float) -> bool:
    """Grant a supporter's monthly kudos for ``period`` (``YYYY-MM``) unless already granted; True if granted."""
    cents = ledger.kudos_to_cents(settings.economy.supporter_monthly_kudos)
    reference = f"supporter:{user_id}:{period}"
    if cents <= 0:
        return False
    # Recorded once per month: a later request (or two racing at the start of a month) finds it recorded.
    with contextlib.suppress(ledger.DuplicateTransaction):
        await ledger.record(
            store,
            TransactionKind.SUPPORTER,
            reference,
            [Posting(SystemAccount.MINT, -cents), Posting(user_id, cents)],
            memo=f"supporter grant {period}",
            now=now,
        )
        return True
    return False


async def priority_boost(
    store: Store, settings: Settings, user: Account, supporter_until: float | None, now: float
) -> float:
    """Queue priority to add to this user's new request: the boost while a supporter until ``supporter_until``
    (0 otherwise). A supporter's first request of a month also makes that month's grant, if no event made it yet.
    """
    if is_anonymous(user) or not is_active(supporter_until, now):
        return 0.0
    await monthly_grant(store, settings, user.id, month_key(now), now)
    return settings.economy.supporter_priority_boost


async def extend_supporter(
    store: Store, settings: Settings, user_id: int, until: float, now: float, period: str
) -> float:
    """Make the user a supporter at least until ``until`` and grant ``period``'s kudos; returns the new end."""
    new_end = await store.billing.extend(user_id, until, now)
    await monthly_grant(store, settings, user_id, period, now)
    return new_end


async def end_supporter(store: Store, user_id: int, now: float) -> bool:
    """End the user's Supporter tier now; False if it was not active."""
    return await store.billing.end(user_id, now)


def _check_admin(actor: Account | None, target: Account) -> None:
    """``actor`` None is the command line, which works on the database directly."""
    if actor is not None and not actor.is_admin:
        raise NotAdmin("Only admins can change a user's tier or grant credits.")
    if is_anonymous(target):
        raise AnonForbiddenUserMod("The anonymous user has no tier.")


async def grant_supporter(
    store: Store, settings: Settings, actor: Account | None, target: Account, months: int, now: float | None = None
) -> TierInfo:
    """An admin makes ``target`` a supporter for ``months`` more months (from now, or from the current end)."""
    moment = now or time.time()
    _check_admin(actor, target)
    current = await store.billing.supporter_until(target.id)
    start = current if is_active(current, moment) and current is not None else moment
    until = await extend_supporter(
        store, settings, target.id, start + months * SUPPORTER_MONTH_SECONDS, moment, month_key(moment)
    )
    details = {"months": months, "until": until}
    await audit.record(store, actor, "user.supporter_on", "user", target.id, details, now=moment)
    return await tier_of(store, target, moment)


async def revoke_supporter(store: Store, actor: Account | None, target: Account, now: float | None = None) -> TierInfo:
    """An admin ends ``target``'s Supporter tier now (kudos already granted stay)."""
    moment = now or time.time()
    _check_admin(actor, target)
    ended = await end_supporter(store, target.id, moment)
    await audit.record(store, actor, "user.supporter_off", "user", target.id, {"was_active": ended}, now=moment)
    return await tier_of(store, target, moment)


async def add_credits(store: Store, user_id: int, kudos: float, reference: str, memo: str, now: float) -> bool:
    """Record ``kudos`` bought by the user under ``reference``; False if that reference was recorded before."""
    ledger.check_amount(kudos)
    cents = ledger.kudos_to_cents(kudos)
    if cents <= 0:
        raise KudosAwardNotPositive("Credits must be a positive number of kudos.")
    try:
        await ledger.record(
            store,
            TransactionKind.CREDITS,
            reference,
            [Posting(SystemAccount.MINT, -cents), Posting(user_id, cents)],
            memo=memo,
            now=now,
        )
    except ledger.DuplicateTransaction:
        return False
    return True


async def grant_credits(
    store: Store,
    actor: Account | None,
    target: Account,
    kudos: float,
    reference: str,
    now: float | None = None,
) -> bool:
    """An admin records kudos bought outside Stripe (an invoice, a bank transfer) once per ``reference``."""
    moment = now or time.time()
    _check_admin(actor, target)
    memo = f"credits by admin {reference}"
    recorded = await add_credits(store, target.id, kudos, f"admin:{reference}", memo, moment)
    if recorded:
        details = {"kudos": kudos, "reference": reference}
        await audit.record(store, actor, "user.credits", "user", target.id, details, now=moment)
    return recorded
