"""The database engine and the one session pattern (a unit of work per request or loop step)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from openhorde.storage.direct_sql import Reads
from openhorde.storage.events import EventBroker
from openhorde.storage.files import PRIVATE_FILE_MODE, make_private
from openhorde.storage.store import Store
from openhorde.storage.urls import asyncpg_dsn

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite connection waits for another process's write lock."""

POSTGRES_POOL_SIZE = 28
POSTGRES_MAX_OVERFLOW = 8
"""Connections a server process keeps open, and how many more it may open for a burst. A connection opened for a
burst is closed when handed back: its set-up (a PostgreSQL backend, type introspection, statements prepared again)
cost more than the calls it served, so the pool is large enough that steady traffic never overflows (with 10, the
job-cycle benchmark spent over half of PostgreSQL's CPU on new connections; with 20 it still reached 31 connections,
the requests of one user waiting on each other's row lock while holding theirs). Connections open only when used;
two server processes stay under PostgreSQL's default 100 connections even at their bursts, read pools included."""
POSTGRES_READ_POOL_SIZE = 12
"""asyncpg connections a server process keeps for the statements that stand alone: the reads outside any
transaction (``Database.reader``: a check, a status) and a pop's one statement. Each is one short statement, so
a few connections serve many clients."""
POSTGRES_SESSION_SETTINGS = {"jit": "off"}
"""JIT compilation pays off for long analytic queries, not ours: it spent 2.8 s compiling the 5.5 s queue
snapshot at 100,000 queued, whose real work is many small index probes.

Prepared statements keep PostgreSQL's default plan caching: after five runs it may keep a generic plan, made
without the statement's values, and save planning each run (forcing custom plans cost about 2 ms of PostgreSQL
CPU per job cycle). So a hot statement must be served by its indexes whatever the values; migration 0013 and
``tests/integration/api/test_jobs.py`` (the pop under a generic plan) see to the pop."""


SQLITE_COMPANION_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _is_sqlite_file(url: str) -> bool:
    """Whether the SQLite URL names a file by its path (not ``:memory:``, not a ``file:`` URI)."""
    name = make_url(url).database
    return bool(name) and name != ":memory:" and not str(name).startswith("file:")


def _make_sqlite_files_private(url: str) -> None:
    """Create the database file owner-only before SQLite opens it (its WAL and shared-memory files then get
    the same mode), and tighten the modes of files an older version left readable."""
    if not _is_sqlite_file(url):
        return
    path = Path(str(make_url(url).database))
    if not path.parent.is_dir():
        return  # SQLite will say the folder is missing
    make_private(path)
    for suffix in SQLITE_COMPANION_SUFFIXES[1:]:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(PRIVATE_FILE_MODE)


def _replace_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """On checkout, hand back a pooled connection that PostgreSQL has closed (a restart, ``pg_terminate_backend``)
    so the pool opens a new one, instead of the call failing with a 500 (found by the chaos suite).

    asyncpg notices a closed socket as soon as the event loop reads its end, so this costs no round trip:
    SQLAlchemy's ``pool_pre_ping`` would send three (BEGIN, a ping, ROLLBACK) on every checkout.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError()


async def _sqlalchemy_json_codecs(connection: asyncpg.Connection) -> None:
    """JSON in and out as SQLAlchemy's asyncpg dialect has it (text in, decoded values out), so a row read on the
    read pool equals the same row read through a session."""
    await connection.set_type_codec(
        "json", schema="pg_catalog", format="binary", encoder=str.encode, decoder=lambda raw: json.loads(raw.decode())
    )
    await connection.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="binary",
        encoder=lambda text: b"\x01" + text.encode(),  # jsonb's binary format: a version byte, then the text
        decoder=lambda raw: json.loads(raw[1:].decode()),
    )


async def _keep_as_is(_connection: asyncpg.Connection) -> None:
    """A read-pool connection comes back as it went out (single statements, no session settings, no listeners),
    so asyncpg's default reset, a round trip per release, has nothing to undo."""


def _begin_without_waiting(sqlite: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE`` on the ``sqlite3`` connection itself, in this thread, unless the write lock is taken
    (``False``): a statement sent through aiosqlite costs a thread hop (~0.1 ms of CPU) and SQLAlchemy's execution
    path, twice the cost of the statements of a whole pop. The pool's one connection is this unit of work's, so
    only another process (an ``openhorde admin`` command) can hold the lock, and waiting for it here would hold
    up the event loop: that case waits in aiosqlite's thread, as every begin did before."""
    sqlite.execute("PRAGMA busy_timeout = 0")
    try:
        sqlite.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    finally:
        sqlite.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    return True


class Database:
    """An async engine plus its session factory, and where reads outside a transaction run (``reads``).

    SQLite: one pooled connection in WAL mode, so the process's transactions take turns
    instead of failing with "database is locked"; ``BEGIN IMMEDIATE`` makes a second process
    (the admin CLI) wait for the write lock rather than fail on upgrade. The readers' hot
    statements use a second connection, which WAL lets read while the first writes.
    PostgreSQL: a normal connection pool; concurrency is handled with row locks. The readers'
    hot statements use a small asyncpg pool of their own.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            _make_sqlite_files_private(url)
        self.engine: AsyncEngine = self._create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Reads that need no transaction: each statement stands alone, so no BEGIN and COMMIT round trips, and on
        # SQLite no write lock while they run.
        self.readers = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False, autoflush=False
        )
        self._read_pool: asyncpg.Pool | None = None
        """PostgreSQL: plain asyncpg connections for the readers' hot statements, opened on first use."""
        self._read_pool_opening = asyncio.Lock()
        self._sqlite_reader: sqlite3.Connection | None = None
        self.broker: EventBroker | None = None
        """Where committed units of work publish their change events (``events.open_broker`` sets it)."""
        self.reads: Reads | None = None
        """Where a reader's hot statements run: a pool of asyncpg connections, or a SQLite connection of its own
        (an in-memory database, which a second connection would not see, reads through the pooled one)."""
        if not self.is_sqlite:
            self.reads = self._postgres_reads
        elif _is_sqlite_file(url):
            self.reads = self._sqlite_reads

    def _create_engine(self, url: str) -> AsyncEngine:
        if not self.is_sqlite:
            postgres = create_async_engine(
                url,
                pool_size=POSTGRES_POOL_SIZE,
                max_overflow=POSTGRES_MAX_OVERFLOW,
                connect_args={"server_settings": POSTGRES_SESSION_SETTINGS},
            )
            event.listen(postgres.sync_engine, "checkout", _replace_closed_connection)
            return postgres
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return
            if not _begin_without_waiting(connection.connection.driver_connection._conn):
                connection.exec_driver_sql("BEGIN IMMEDIATE")  # another process writes: wait in aiosqlite's thread

        return engine

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """A session committed once when the block ends, rolled back if it raises."""
        async with self.sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    def store(self) -> Store:
        """A unit of work as the domain sees it (``async with db.store() as store``): its repositories, committed
        once when the block ends (rolled back if it raises); its session opens on first use."""
        # On PostgreSQL a statement that is a transaction by itself (a pop's) uses the readers' pool while the unit
        # of work has begun no transaction.
        return Store(self.sessions, self.is_sqlite, alone=None if self.is_sqlite else self.reads, broker=self.broker)

    def reader(self) -> Store:
        """Repositories for reads only, outside any transaction (each statement sees the data as it then is).

        For the calls that only look (a request's check and status): a write here would commit on its own. Their
        hot statements run on ``reads``, without a session: with no transaction to share, nothing needs the
        session's connection."""
        return Store(self.readers, self.is_sqlite, reads=self.reads, broker=self.broker)

    async def _postgres_reads(self) -> asyncpg.Pool:
        """The readers' pool of asyncpg connections, opened on first use."""
        if self._read_pool is None:
            async with self._read_pool_opening:
                if self._read_pool is None:
                    self._read_pool = await asyncpg.create_pool(
                        asyncpg_dsn(self.url),
                        min_size=0,
                        max_size=POSTGRES_READ_POOL_SIZE,
                        init=_sqlalchemy_json_codecs,
                        reset=_keep_as_is,
                        server_settings=POSTGRES_SESSION_SETTINGS,
                    )
        return self._read_pool

    async def _sqlite_reads(self) -> sqlite3.Connection:
        """The readers' SQLite connection, opened on first use; only the event loop's thread uses it (a read in
        WAL mode waits for no lock, so it never holds the loop up)."""
        if self._sqlite_reader is None:
            self._sqlite_reader = sqlite3.connect(
                str(make_url(self.url).database),
                isolation_level=None,
                check_same_thread=False,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            )
        return self._sqlite_reader

    async def dispose(self) -> None:
        """Close every pooled connection."""
        read_pool, self._read_pool = self._read_pool, None
        if read_pool is not None:
            await read_pool.close()
        sqlite_reader, self._sqlite_reader = self._sqlite_reader, None
        if sqlite_reader is not None:
            sqlite_reader.close()
        await self.engine.dispose()
