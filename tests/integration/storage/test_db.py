"""The database connection's own settings on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from openhorde.storage.db import Database

pytestmark = pytest.mark.postgres


async def test_postgresql_plans_each_statement_for_its_values_and_never_jits(migrated_database: Database) -> None:
    """Prepared statements keep custom plans (a generic plan of the pop's queue walk read the whole queue), and no
    JIT compilation (it cost seconds on the queue snapshot)."""
    async with migrated_database.unit_of_work() as session:
        plan_cache_mode = (await session.execute(text("SHOW plan_cache_mode"))).scalar_one()
        jit = (await session.execute(text("SHOW jit"))).scalar_one()
    assert (plan_cache_mode, jit) == ("force_custom_plan", "off")
