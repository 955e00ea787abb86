"""The limits repository: what the limits that the database counts read (the free tier's per-IP queue)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Request

_REQUESTS = cast(Table, Request.__table__)

# Walks ix_requests_client_ip_queued: the queued requests from one address. The state is a literal, so that a
# cached (generic) plan of the prepared statement can still prove the partial index's predicate.
_QUEUED_FOR_IP = select(func.coalesce(func.sum(_REQUESTS.c.n_waiting), 0)).where(
    _REQUESTS.c.state == literal_column("'queued'"),
    _REQUESTS.c.client_ip_hash == bindparam("ip_hash"),
    _REQUESTS.c.user_id == bindparam("user_id"),
)


class LimitRepository:
    """The per-IP queue limit's count."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def queued_images_for_ip(self, ip_hash: str, user_id: int) -> int:
        """Images that ``user_id``'s queued requests from one (hashed) address still have waiting."""
        values = {"ip_hash": ip_hash, "user_id": user_id}
        return int((await self._session.execute(_QUEUED_FOR_IP, values)).scalar() or 0)
