"""Named queries of the paid tiers: supporter rows and the Stripe events already handled."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import StripeEvent, Supporter


async def supporter_of(session: AsyncSession, user_id: int, lock: bool = False) -> Supporter | None:
    """The user's supporter row, if any (locked ``FOR UPDATE`` on PostgreSQL with ``lock``)."""
    query = select(Supporter).where(Supporter.user_id == user_id)
    if lock:
        query = query.with_for_update()
    found: Supporter | None = await session.scalar(query)
    return found


async def supporter_until(session: AsyncSession, user_id: int) -> float | None:
    """Until when (epoch seconds) the user is a supporter; None if never."""
    until: float | None = await session.scalar(select(Supporter.until).where(Supporter.user_id == user_id))
    return until


async def supporter_row(session: AsyncSession, user_id: int, now: float) -> Supporter:
    """The user's supporter row, created (inactive) if missing, locked for update."""
    row = await supporter_of(session, user_id, lock=True)
    if row is None:
        row = Supporter(user_id=user_id, until=0.0, updated_at=now)
        session.add(row)
        await session.flush()
    return row


async def user_of_customer(session: AsyncSession, customer_id: str) -> int | None:
    """The user a Stripe customer id belongs to, if known."""
    user_id: int | None = await session.scalar(
        select(Supporter.user_id).where(Supporter.stripe_customer_id == customer_id)
    )
    return user_id


async def claim_event(session: AsyncSession, event_id: str, event_type: str, now: float) -> bool:
    """Record a Stripe event as handled; False when it already was (a redelivery). Uses a savepoint."""
    try:
        async with session.begin_nested():
            await session.execute(
                insert(StripeEvent).values(id=event_id, type=event_type, user_id=None, received_at=now)
            )
    except IntegrityError:
        return False
    return True


async def note_event_user(session: AsyncSession, event_id: str, user_id: int) -> None:
    """Remember which user a handled event concerned."""
    event = await session.get(StripeEvent, event_id)
    if event is not None:
        event.user_id = user_id
        await session.flush()
