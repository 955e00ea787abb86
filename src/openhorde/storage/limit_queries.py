"""Named queries of the free tier's per-IP queue limit."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Request

# Walks ix_requests_client_ip_queued: the queued requests from one address.
_QUEUED_FOR_IP = select(func.coalesce(func.sum(Request.n_waiting), 0)).where(
    Request.state == "queued",
    Request.client_ip_hash == bindparam("ip_hash"),
    Request.user_id == bindparam("user_id"),
)


async def queued_images_for_ip(session: AsyncSession, ip_hash: str, user_id: int) -> int:
    """Images that ``user_id``'s queued requests from one (hashed) address still have waiting."""
    return int(await session.scalar(_QUEUED_FOR_IP, {"ip_hash": ip_hash, "user_id": user_id}) or 0)
