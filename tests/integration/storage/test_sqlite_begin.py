"""SQLite's write lock: a unit of work takes it at once when it is free, and waits for it without holding up the
event loop when another process has it."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import make_url, text

from openhorde.storage.db import Database


@pytest.fixture
def sqlite_path(migrated_database: Database) -> str:
    if not migrated_database.is_sqlite:
        pytest.skip("SQLite's write lock")
    return str(make_url(migrated_database.url).database)


async def _write_news(db: Database, title: str) -> None:
    async with db.unit_of_work() as session:
        await session.execute(
            text(
                "INSERT INTO news (date_published, title, newspiece, importance, tags, more_info_urls, created_at)"
                " VALUES ('2026-12-06', :t, '', 'Information', '[]', '[]', 0)"
            ),
            {"t": title},
        )


async def test_a_unit_of_work_waits_for_another_processs_write_lock_while_the_loop_runs_on(
    migrated_database: Database, sqlite_path: str
) -> None:
    other = sqlite3.connect(sqlite_path, isolation_level=None)  # another process, as far as SQLite can tell
    other.execute("BEGIN IMMEDIATE")
    try:
        writing = asyncio.create_task(_write_news(migrated_database, "after the lock"))
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the unit of work waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not writing.done()
    finally:
        other.execute("COMMIT")
        other.close()
    await asyncio.wait_for(writing, timeout=10)
    assert ticks == 20
    async with migrated_database.unit_of_work() as session:
        titles = (await session.execute(text("SELECT title FROM news"))).scalars().all()
    assert "after the lock" in titles


async def test_a_unit_of_work_holds_the_write_lock_from_its_first_statement(
    migrated_database: Database, sqlite_path: str
) -> None:
    async with migrated_database.unit_of_work() as session:
        await session.execute(text("SELECT 1"))
        other = sqlite3.connect(sqlite_path, isolation_level=None, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()
