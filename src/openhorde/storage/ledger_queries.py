"""Transitional: what is left of the ledger's named queries, now in ``repositories/ledger.py``.

Only ``lock_users`` remains, for ``domain/moderation/modes.py`` until it calls ``store.accounts.lock``;
then this module goes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.repositories.accounts import AccountRepository


async def lock_users(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, int]:
    """Lock these users' rows (PostgreSQL) until the transaction ends; see ``AccountRepository.lock``."""
    return await AccountRepository(session).lock(user_ids)
