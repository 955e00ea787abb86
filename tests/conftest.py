"""Shared fixtures: database backends and a live horde server per test.

Every test gets a fresh database: on SQLite a copy of a migrated file, on PostgreSQL a
``CREATE DATABASE … TEMPLATE`` clone of a migrated template. Set ``OPENHORDE_TEST_BACKENDS``
(``sqlite,postgres`` by default) to choose which backends run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from openhorde.storage.db import Database
from openhorde.storage.migrate import upgrade_to_head

pytest_plugins = ["tests.live_server"]

POSTGRES_ADMIN_DSN = os.environ.get("OPENHORDE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = [b for b in os.environ.get("OPENHORDE_TEST_BACKENDS", "sqlite,postgres").split(",") if b]
TEMPLATE_NAME = f"openhorde_template_{os.getpid()}"


async def admin_execute(sql: str) -> None:
    """Run one statement on the test PostgreSQL server's maintenance database (outside a transaction)."""
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def postgres_url(database: str) -> str:
    """The SQLAlchemy URL of a database on the test PostgreSQL server."""
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{database}"


def _run_in_thread(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion on a fresh loop in another thread (callable from inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await upgrade_to_head(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file to copy for each test."""
    path = tmp_path_factory.mktemp("template") / "horde.db"
    _run_in_thread(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database to clone for each test."""
    _run_in_thread(admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}"'))
    _run_in_thread(admin_execute(f'CREATE DATABASE "{TEMPLATE_NAME}"'))
    _run_in_thread(_migrate(postgres_url(TEMPLATE_NAME)))
    yield TEMPLATE_NAME
    _run_in_thread(admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database engine a test runs on."""
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    if backend == "sqlite":
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        shutil.copy(request.getfixturevalue("sqlite_template"), data_dir / "horde.db")
        yield f"sqlite+aiosqlite:///{data_dir / 'horde.db'}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"openhorde_test_{uuid.uuid4().hex[:12]}"
    await admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield postgres_url(name)
    await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
