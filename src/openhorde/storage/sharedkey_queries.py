"""Named queries of shared keys: their owners' lists, their queued charges and their usage."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Request, SharedKey

_KEY_BY_HASH = select(SharedKey).where(SharedKey.key_hash == bindparam("key_hash"))
_KEY_FOR_UPDATE = select(SharedKey).where(SharedKey.id == bindparam("id")).with_for_update()
_KEY_IDS_OF = select(SharedKey.id).where(SharedKey.user_id == bindparam("user_id")).order_by(SharedKey.created_at)
_COUNT_OF = select(func.count()).select_from(SharedKey).where(SharedKey.user_id == bindparam("user_id"))
# Filtering on the owner as well lets the database use the owner's queued-requests index.
_OUTSTANDING = select(
    func.coalesce(func.sum((Request.n_waiting + Request.n_processing) * Request.charge_cents), 0)
).where(
    Request.state == "queued",
    Request.user_id == bindparam("user_id"),
    Request.sharedkey_id == bindparam("sharedkey_id"),
)
_ADD_USAGE = (
    update(SharedKey)
    .where(SharedKey.id == bindparam("sharedkey_id"))
    .values(utilized_cents=SharedKey.utilized_cents + bindparam("cents"))
)


async def key_by_hash(session: AsyncSession, key_hash: str) -> SharedKey | None:
    """The shared key stored under this keyed hash, if any (no lock)."""
    return await session.scalar(_KEY_BY_HASH, {"key_hash": key_hash})


async def lock_key(session: AsyncSession, sharedkey_id: str) -> SharedKey | None:
    """The shared key row, locked on PostgreSQL (``FOR UPDATE``) so two requests on one key check its budget in turn."""
    return await session.scalar(_KEY_FOR_UPDATE, {"id": sharedkey_id}, execution_options={"populate_existing": True})


async def key_ids_of(session: AsyncSession, user_id: int) -> list[str]:
    """Row ids of a user's shared keys, oldest first."""
    return list(await session.scalars(_KEY_IDS_OF, {"user_id": user_id}))


async def count_of(session: AsyncSession, user_id: int) -> int:
    """How many shared keys a user has."""
    return int(await session.scalar(_COUNT_OF, {"user_id": user_id}) or 0)


async def outstanding_cents(session: AsyncSession, user_id: int, sharedkey_id: str) -> int:
    """Hundredths of a kudo the queued requests made with this key will still cost."""
    return int(await session.scalar(_OUTSTANDING, {"user_id": user_id, "sharedkey_id": sharedkey_id}) or 0)


async def add_usage(session: AsyncSession, sharedkey_id: str, cents: int) -> None:
    """Add ``cents`` to what a key has used, in one conditional update (no read-modify-write race)."""
    await session.execute(_ADD_USAGE, {"sharedkey_id": sharedkey_id, "cents": cents})
