"""The hot statements' executor: straight to the driver, inside the unit of work's transaction.

A statement sent through ``AsyncSession.execute`` costs about 110 µs of this process's CPU on PostgreSQL on top
of asyncpg's own ~80 µs (the greenlet hop, the adapter's cursor emulation, result metadata), and on SQLite
several of aiosqlite's thread hops (~0.1 ms each) around a statement that itself takes microseconds; a job cycle
sends a dozen. The statements of the hot calls (pop, submit, a new request, check and status) have fixed shapes,
so each is compiled once here for the driver (asyncpg's ``$n``, SQLite's ``?``) and sent on the unit of work's
connection, in its transaction: on PostgreSQL through asyncpg (when they come first, on a connection of the
unit of work's own, with no session: ``Store``), on SQLite on the ``sqlite3`` connection itself, in this thread
(the unit of work holds it, and its write lock).
Every other statement, and one whose SQL depends on its values (``IN`` a list bound at execution), goes through
the session. A unit of work outside any transaction (``Database.reader``: a check, a status) opens no session:
on PostgreSQL each statement takes a connection of a small asyncpg pool, on SQLite a read connection of its own.
A statement that is a whole transaction by itself (a pop's, on PostgreSQL: ``first_alone``) runs the same way
when its unit of work has begun no transaction: no session, no ``BEGIN`` and no ``COMMIT`` round trip.

Rows come back as sequences of column values in the statement's order (an asyncpg ``Record``, a tuple or a
SQLAlchemy ``Row``: index, slice and unpack them); values are what SQLAlchemy would have returned (JSON decoded,
say): the asyncpg connections' codecs are SQLAlchemy's, and the column types' result processors are applied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Float
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

Row = Sequence[Any]
Processor = Callable[[Any], Any] | None
Reads = Callable[[], Awaitable[Any]]
"""Where a unit of work outside any transaction runs its hot statements (``Database.reads``): on PostgreSQL an
asyncpg pool (a connection per statement), on SQLite a ``sqlite3`` connection of its own."""

_REQUIRED = object()
"""The default of a bind the caller must give a value (a ``bindparam`` without one)."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement as the driver takes it, and how to turn the caller's values into its arguments and back."""

    sql: str
    binds: tuple[tuple[str, Any, Processor], ...]
    """Per placeholder, in order: the bind's name, its default (``_REQUIRED`` when none), its type's processor."""
    results: tuple[Processor, ...] | None
    """Per result column, its type's processor; ``None`` when no column has one."""


@lru_cache(maxsize=1024)
def _compiled(statement: Executable, dialect: Dialect) -> _Compiled | None:
    """Compile once per statement object (the hot statements are module constants or cached per shape), with the
    engine's dialect (its JSON serializer, the server's version; asyncpg's ``$n`` or SQLite's ``?``); ``None``
    for a statement whose SQL depends on its values (an ``IN`` with a list bound at execution), which the session
    sends."""
    compiled: Any = cast(ClauseElement, statement).compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string:
        return None
    defaults = compiled.construct_params(_check=False)
    bind_processors = compiled._bind_processors
    binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        default = _REQUIRED if bind.required else defaults.get(name)
        binds.append((name, default, bind_processors.get(name)))
    results = tuple(_result_processor(column.type, dialect) for column in compiled._result_columns)
    return _Compiled(sql=compiled.string, binds=tuple(binds), results=results if any(results) else None)


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """What SQLAlchemy does to a value of this type on its way out of the driver (``None``: nothing)."""
    if isinstance(type_, Float) and not type_.asdecimal:
        return None  # a float already (on asyncpg, SQLAlchemy would ask for the column's type code to know that)
    processor: Processor = type_._cached_result_processor(dialect, None)
    return processor


def _arguments(compiled: _Compiled, values: Mapping[str, Any]) -> list[Any]:
    arguments = []
    for name, default, processor in compiled.binds:
        value = values.get(name, default)
        if value is _REQUIRED:
            raise KeyError(f"no value for the bind {name!r}")
        arguments.append(value if processor is None else processor(value))  # None too: JSON's None is 'null'
    return arguments


class DirectSql:
    """Runs one unit of work's hot statements (see the module's docstring); made by ``Store``."""

    __slots__ = (
        "_alone",
        "_began",
        "_connect",
        "_dialect",
        "_driver",
        "_engine",
        "_postgres",
        "_reads",
        "_session",
    )

    def __init__(
        self,
        session: Callable[[], AsyncSession],
        engine: AsyncEngine,
        is_sqlite: bool,
        reads: Reads | None = None,
        alone: Reads | None = None,
        began: Callable[[], bool] = lambda: True,
        connect: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self._session = session
        """The unit of work's session (opened by the call: a unit of work on ``reads`` opens none)."""
        self._postgres = not is_sqlite
        self._reads = reads
        """For a unit of work outside any transaction: where its statements run instead of the session's connection."""
        self._alone = alone if not is_sqlite else None
        """PostgreSQL: where a statement that stands alone runs while the unit of work has begun no transaction."""
        self._began = began
        """Whether the unit of work has begun its transaction (its session's, whoever sent the first statement)."""
        self._connect = connect
        """PostgreSQL: the unit of work's DBAPI connection for these statements (``Store`` decides which: its
        session's, or one of its own that a session made later joins); without it, the session's."""
        self._engine = engine.sync_engine
        self._dialect: Dialect = engine.dialect
        self._driver: Any = None
        """The unit of work's connection as the statements use it, once one needed it: SQLAlchemy's adapter around
        the asyncpg connection, or the ``sqlite3`` connection under aiosqlite's."""

    async def rows(self, statement: Executable, values: Mapping[str, Any], alone: bool = False) -> Sequence[Row]:
        """Every row the statement returns; with ``alone``, sent as a transaction of its own if the unit of work has
        begun none (PostgreSQL)."""
        compiled = _compiled(statement, self._dialect)
        if compiled is None:
            return (await self._session().execute(statement, values)).all()
        records: Sequence[Row] = await self._fetch(compiled, _arguments(compiled, values), alone=alone)
        if compiled.results is None:
            return records
        processors = compiled.results
        return [
            tuple(value if process is None else process(value) for process, value in zip(processors, row, strict=True))
            for row in records
        ]

    async def first(self, statement: Executable, values: Mapping[str, Any]) -> Row | None:
        """The statement's first row, or ``None`` when it returns none."""
        rows = await self.rows(statement, values)
        return rows[0] if rows else None

    async def first_alone(self, statement: Executable, values: Mapping[str, Any]) -> Row | None:
        """The first row of a statement that is a whole transaction by itself: sent alone, committed by PostgreSQL
        as it ends, unless the unit of work has begun a transaction already (its writes must be seen), in which
        case the statement runs in it."""
        rows = await self.rows(statement, values, alone=True)
        return rows[0] if rows else None

    async def one(self, statement: Executable, values: Mapping[str, Any]) -> Row:
        """The statement's one row (``LookupError`` when it returns none or several)."""
        rows = await self.rows(statement, values)
        if len(rows) != 1:
            raise LookupError(f"one row expected, {len(rows)} returned")
        return rows[0]

    async def scalar(self, statement: Executable, values: Mapping[str, Any]) -> Any:
        """The first column of the statement's one row."""
        return (await self.one(statement, values))[0]

    async def execute(self, statement: Executable, values: Mapping[str, Any]) -> None:
        """Run a statement whose rows (if any) nobody reads."""
        compiled = _compiled(statement, self._dialect)
        if compiled is None:
            await self._session().execute(statement, values)
            return
        await self._fetch(compiled, _arguments(compiled, values))

    async def execute_many(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per set of values (an insert of several rows, say)."""
        compiled = _compiled(statement, self._dialect)
        if compiled is None:
            await self._session().execute(statement, list(rows))
            return
        if rows:
            await self._fetch(compiled, [_arguments(compiled, values) for values in rows], many=True)

    async def _fetch(self, compiled: _Compiled, arguments: list[Any], many: bool = False, alone: bool = False) -> Any:
        """The statement's rows; with ``many``, ``arguments`` is a list of argument lists, sent in one go and no
        rows read; with ``alone``, on a pooled connection of its own when the unit of work has begun nothing."""
        if not self._postgres:
            connection = await self._sqlite()
            self._announce(compiled, arguments, many)
            if many:
                connection.executemany(compiled.sql, arguments)
                return None
            return _sqlite_rows(connection, compiled.sql, arguments)
        pool = self._reads
        if pool is None and alone and self._alone is not None and self._driver is None and not self._began():
            pool = self._alone
        if pool is not None:
            async with (await pool()).acquire() as pooled:
                self._announce(compiled, arguments, many)
                return await _asyncpg_run(pooled, compiled.sql, arguments, many)
        driver = self._driver
        if driver is None:
            if self._connect is not None:
                driver = self._driver = await self._connect()
            else:
                session_connection = await self._session().connection()
                driver = self._driver = (await session_connection.get_raw_connection()).dbapi_connection
        # The adapter's own rules: one statement at a time per connection, and its transaction begun lazily by
        # the first statement; the unit of work commits or rolls it back as it ends (through its session, or with
        # ``end_transaction`` when it opened none).
        async with driver._execute_mutex:
            if driver._transaction is None:
                await driver._start_transaction()
            self._announce(compiled, arguments, many)
            return await _asyncpg_run(driver._connection, compiled.sql, arguments, many)

    def _announce(self, compiled: _Compiled, arguments: list[Any], many: bool) -> None:
        """Tell the engine's statement listeners, as SQLAlchemy would (the statement-budget test counts them)."""
        listeners = self._engine.dispatch.before_cursor_execute
        if listeners:
            listeners(None, None, compiled.sql, arguments, None, many)

    async def _sqlite(self) -> sqlite3.Connection:
        if self._reads is not None:
            connection: sqlite3.Connection = await self._reads()
            return connection
        if self._driver is None:
            # The session's connection, its transaction begun (``BEGIN IMMEDIATE``: the write lock is ours). While
            # this unit of work holds it no other uses it, and aiosqlite's thread waits for work.
            session_connection = await self._session().connection()
            raw = await session_connection.get_raw_connection()
            self._driver = cast(Any, raw.driver_connection)._conn
        return cast(sqlite3.Connection, self._driver)


async def end_transaction(driver: Any, commit: bool) -> None:
    """Commit (or roll back) the transaction the hot statements began on SQLAlchemy's asyncpg adapter ``driver``,
    if one is open: the adapter's own steps, taken without the greenlet its synchronous ``commit`` needs."""
    async with driver._execute_mutex:
        transaction = driver._transaction
        if transaction is not None:
            await driver._call_and_discard(transaction.commit if commit else transaction.rollback)


async def _asyncpg_run(connection: Any, sql: str, arguments: list[Any], many: bool) -> Any:
    if many:
        await connection.executemany(sql, arguments)
        return None
    return await connection.fetch(sql, *arguments)


def _sqlite_rows(connection: sqlite3.Connection, sql: str, arguments: list[Any]) -> list[Any]:
    """Run a statement on SQLite in this thread: a hot statement takes microseconds, and the write lock is held
    already (or not needed), where each of aiosqlite's thread hops costs about 0.1 ms of CPU."""
    cursor = connection.execute(sql, arguments)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()
