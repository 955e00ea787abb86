"""The database connection's own settings on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from openhorde.storage.db import Database

pytestmark = pytest.mark.postgres


async def test_postgresql_sessions_never_jit(migrated_database: Database) -> None:
    """No JIT compilation: it cost seconds on the queue snapshot, whose work is many small index probes."""
    async with migrated_database.unit_of_work() as session:
        jit = (await session.execute(text("SHOW jit"))).scalar_one()
    assert jit == "off"
