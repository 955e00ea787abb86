"""Cluster-wide mutual exclusion for periodic duties: PostgreSQL transaction-level advisory locks.

Several server processes share one PostgreSQL database; a duty that should run in one of them at a
time takes ``pg_try_advisory_xact_lock(key)`` at the start of its transaction and skips its pass when
another process holds the lock. The lock is released when the transaction ends (commit, rollback or a
lost connection), so a crashed process never leaves it behind. SQLite serves one process: no lock.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MAINTENANCE_LOCK = 0x0_4F48_0001
"""Advisory lock key of the maintenance pass (lease expiry, queue time-outs, clean-up). "OH" + 1."""

_TRY_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


async def try_cluster_lock(session: AsyncSession, key: int) -> bool:
    """Take the cluster lock ``key`` for the rest of ``session``'s transaction; False if another holds it."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return True
    return bool(await session.scalar(_TRY_LOCK, {"key": key}))
