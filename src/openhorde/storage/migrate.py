"""Apply the Alembic migrations; the server does this on every start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from openhorde.storage.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 70_017_001
"""PostgreSQL advisory lock key: servers starting together migrate one at a time."""


def alembic_config(connection: Any | None = None) -> Config:
    """An Alembic config pointing at our migrations, optionally bound to a connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Any) -> None:
    command.upgrade(alembic_config(connection), "head")


async def upgrade_to_head(db: Database) -> None:
    """Bring the database schema to the newest revision."""
    async with db.engine.begin() as connection:
        if not db.is_sqlite:
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_ID})
        await connection.run_sync(_upgrade)
