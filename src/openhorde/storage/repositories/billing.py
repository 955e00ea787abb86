"""The billing repository: supporters (the Supporter tier and its Stripe customer), Stripe events, credits bought.

A supporter's row is written with one upsert each time (``extend``, ``link_customer``), so two events of one
user at once cannot both create it; a Stripe event is claimed with an insert that does nothing when the event
is already recorded, so a redelivery is told apart without a savepoint. Credits bought are ledger
transactions (``ledger.py`` records them); ``tier`` reads their sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import KudosPosting, KudosTransaction, StripeEvent, Supporter

_SUPPORTERS = cast(Table, Supporter.__table__)
_EVENTS = cast(Table, StripeEvent.__table__)
_TRANSACTIONS = cast(Table, KudosTransaction.__table__)
_POSTINGS = cast(Table, KudosPosting.__table__)


@dataclass(frozen=True, slots=True)
class TierFacts:
    """What an account's tier is read from: until when it is a supporter, and the kudos it has bought."""

    supporter_until: float | None
    """``None`` if it never was one."""
    credits_bought_cents: int


_UNTIL = select(_SUPPORTERS.c.until).where(_SUPPORTERS.c.user_id == bindparam("supporter"))
_TIER = select(
    _UNTIL.scalar_subquery(),
    select(func.coalesce(func.sum(case((_POSTINGS.c.amount_cents > 0, _POSTINGS.c.amount_cents), else_=0)), 0))
    .join_from(_POSTINGS, _TRANSACTIONS, _TRANSACTIONS.c.id == _POSTINGS.c.transaction_id)
    .where(_POSTINGS.c.user_id == bindparam("supporter"), _TRANSACTIONS.c.kind == bindparam("credits_kind"))
    .scalar_subquery(),
)


def _extend(insert: Any, greatest: Any) -> Any:
    """Insert a supporter row lasting ``until``, or make an existing one last at least that long."""
    statement = insert(_SUPPORTERS).values(
        user_id=bindparam("supporter"), until=bindparam("new_until"), updated_at=bindparam("now")
    )
    statement = statement.on_conflict_do_update(
        index_elements=[_SUPPORTERS.c.user_id],
        set_={
            "until": greatest(_SUPPORTERS.c.until, statement.excluded.until),
            "updated_at": statement.excluded.updated_at,
        },
    )
    return statement.returning(_SUPPORTERS.c.until)


def _link(insert: Any) -> Any:
    """Insert an (inactive) supporter row with its Stripe ids, or set the ids given on an existing one."""
    statement = insert(_SUPPORTERS).values(
        user_id=bindparam("supporter"),
        until=0.0,
        updated_at=bindparam("now"),
        stripe_customer_id=bindparam("customer"),
        stripe_subscription_id=bindparam("subscription"),
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_SUPPORTERS.c.user_id],
        set_={
            "stripe_customer_id": func.coalesce(excluded.stripe_customer_id, _SUPPORTERS.c.stripe_customer_id),
            "stripe_subscription_id": func.coalesce(
                excluded.stripe_subscription_id, _SUPPORTERS.c.stripe_subscription_id
            ),
        },
    )


# Keyed by "is SQLite": the upserts are written in each engine's dialect (SQLite's two-argument max() is
# PostgreSQL's greatest()).
_EXTEND = {True: _extend(sqlite.insert, func.max), False: _extend(postgresql.insert, func.greatest)}
_LINK = {True: _link(sqlite.insert), False: _link(postgresql.insert)}
_END = (
    update(_SUPPORTERS)
    .where(_SUPPORTERS.c.user_id == bindparam("supporter"), _SUPPORTERS.c.until > bindparam("now"))
    .values(until=bindparam("now"), updated_at=bindparam("now"))
)
_USER_OF_CUSTOMER = select(_SUPPORTERS.c.user_id).where(_SUPPORTERS.c.stripe_customer_id == bindparam("customer"))


def _claim(insert: Any) -> Any:
    statement = insert(_EVENTS).values(
        id=bindparam("event"), type=bindparam("event_type"), user_id=None, received_at=bindparam("now")
    )
    return statement.on_conflict_do_nothing(index_elements=[_EVENTS.c.id]).returning(_EVENTS.c.id)


_CLAIM_EVENT = {True: _claim(sqlite.insert), False: _claim(postgresql.insert)}
_NOTE_EVENT_USER = update(_EVENTS).where(_EVENTS.c.id == bindparam("event")).values(user_id=bindparam("concerned"))


class BillingRepository:
    """Every statement about ``supporters`` and ``stripe_events``, and the sum of credits bought."""

    __slots__ = ("_session", "_sqlite")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._sqlite = is_sqlite

    async def supporter_until(self, user_id: int) -> float | None:
        """Until when (epoch seconds) the user is a supporter; ``None`` if never."""
        until = (await self._session.execute(_UNTIL, {"supporter": user_id})).scalar()
        return None if until is None else float(until)

    async def tier(self, user_id: int, credits_kind: str) -> TierFacts:
        """Until when the user is a supporter, and what the ledger's ``credits_kind`` transactions gave them."""
        values = {"supporter": user_id, "credits_kind": credits_kind}
        until, bought = (await self._session.execute(_TIER, values)).one()
        return TierFacts(None if until is None else float(until), int(bought or 0))

    async def extend(self, user_id: int, until: float, now: float) -> float:
        """Make the user a supporter at least until ``until`` (creating the row if missing); the end after."""
        values = {"supporter": user_id, "new_until": max(until, 0.0), "now": now}
        return float((await self._session.execute(_EXTEND[self._sqlite], values)).scalar_one())

    async def end(self, user_id: int, now: float) -> bool:
        """End the user's Supporter tier now; ``False`` if it was not active (no row, or ended already)."""
        result = await self._session.execute(_END, {"supporter": user_id, "now": now})
        return bool(getattr(result, "rowcount", 0))

    async def link_customer(self, user_id: int, customer: str | None, subscription: str | None, now: float) -> None:
        """Remember the Stripe customer and subscription paying for the user's tier (``None`` leaves one as it is);
        creates the (inactive) supporter row if missing."""
        values = {"supporter": user_id, "customer": customer, "subscription": subscription, "now": now}
        await self._session.execute(_LINK[self._sqlite], values)

    async def user_of_customer(self, customer_id: str) -> int | None:
        """The user a Stripe customer id belongs to, if known."""
        user_id = (await self._session.execute(_USER_OF_CUSTOMER, {"customer": customer_id})).scalar()
        return None if user_id is None else int(user_id)

    async def claim_event(self, event_id: str, event_type: str, now: float) -> bool:
        """Record a Stripe event as handled; ``False`` when it already was (a redelivery), writing nothing."""
        values = {"event": event_id, "event_type": event_type, "now": now}
        return (await self._session.execute(_CLAIM_EVENT[self._sqlite], values)).first() is not None

    async def note_event_user(self, event_id: str, user_id: int) -> None:
        """Remember which user a handled event concerned."""
        await self._session.execute(_NOTE_EVENT_USER, {"event": event_id, "concerned": user_id})
