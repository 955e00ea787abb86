"""Named queries of ``kudos_escrow``: whose kudos the ledger's ``escrow`` account holds."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import KudosEscrow, KudosPosting

_NO_SYNC = {"synchronize_session": False}


async def add(session: AsyncSession, user_id: int, held_cents: int, earned_cents: int, images: int) -> None:
    """Add to a user's escrow and earnings, creating the row on first use (one statement, race-free)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"user_id": user_id, "held_cents": held_cents, "earned_cents": earned_cents, "images": images}
    statement = insert(KudosEscrow).values(**values, releases=0)
    statement = statement.on_conflict_do_update(
        index_elements=[KudosEscrow.user_id],
        set_={
            "held_cents": KudosEscrow.held_cents + held_cents,
            "earned_cents": KudosEscrow.earned_cents + earned_cents,
            "images": KudosEscrow.images + images,
        },
    )
    await session.execute(statement)


_GET = select(KudosEscrow.held_cents, KudosEscrow.earned_cents, KudosEscrow.images, KudosEscrow.releases).where(
    KudosEscrow.user_id == bindparam("user_id")
)


async def get(session: AsyncSession, user_id: int) -> tuple[int, int, int, int]:
    """``(held_cents, earned_cents, images, releases)`` of a user; zeros when the user has no escrow row."""
    row = (await session.execute(_GET, {"user_id": user_id})).first()
    if row is None:
        return 0, 0, 0, 0
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


_CLAIM_RELEASE = (
    update(KudosEscrow)
    .where(
        KudosEscrow.user_id == bindparam("owner_id"),
        KudosEscrow.releases == bindparam("seen_releases"),
        KudosEscrow.held_cents >= bindparam("amount_cents"),
    )
    .values(held_cents=KudosEscrow.held_cents - bindparam("amount_cents"), releases=KudosEscrow.releases + 1)
    .execution_options(**_NO_SYNC)
)


async def claim_release(session: AsyncSession, user_id: int, amount_cents: int, releases: int) -> bool:
    """Take ``amount_cents`` out of a user's escrow if no other release came first (``releases`` unchanged)."""
    result = await session.execute(
        _CLAIM_RELEASE, {"owner_id": user_id, "amount_cents": amount_cents, "seen_releases": releases}
    )
    return bool(getattr(result, "rowcount", 0))


async def total_held(session: AsyncSession) -> int:
    """Every user's held kudos together (hundredths): equals the ledger's ``escrow`` account."""
    return int(await session.scalar(select(func.coalesce(func.sum(KudosEscrow.held_cents), 0))) or 0)


async def escrow_account_total(session: AsyncSession) -> int:
    """The balance of the ledger's ``escrow`` system account (hundredths), from its postings."""
    query = select(func.coalesce(func.sum(KudosPosting.amount_cents), 0)).where(KudosPosting.system_account == "escrow")
    return int(await session.scalar(query) or 0)
