"""The hot statements' executor: on PostgreSQL straight to asyncpg, inside the unit of work's transaction.

A statement sent through ``AsyncSession.execute`` costs about 110 µs of this process's CPU on top of asyncpg's own
~80 µs (the greenlet hop, the adapter's cursor emulation, result metadata, the compiled-cache lookup); a job cycle
sends a dozen. The statements of the hot calls (pop, submit, a new request, check and status) have fixed shapes,
so each is compiled once here, for asyncpg's ``$n`` placeholders, and then sent on the session's own asyncpg
connection, in the transaction SQLAlchemy began (or begins here) and will commit. Every other statement, every
statement on SQLite and one whose SQL depends on its values (``IN`` a list bound at execution) goes through the
session as before. A unit of work outside any transaction (``Database.reader``: a check, a status) takes a
plain asyncpg connection from a small pool of its own for each such statement, and no session at all.

Rows come back as sequences of column values in the statement's order (an asyncpg ``Record`` or a SQLAlchemy
``Row``: index, slice and unpack them), on both databases; values are what SQLAlchemy would have returned (JSON
decoded, say): the connection's codecs are SQLAlchemy's, and the column types' result processors are applied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Float
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

Row = Sequence[Any]
Processor = Callable[[Any], Any] | None
ReadPool = Callable[[], Awaitable[asyncpg.Pool]]
"""Where a unit of work outside any transaction takes a connection per statement (``Database.read_pool``)."""

_REQUIRED = object()
"""The default of a bind the caller must give a value (a ``bindparam`` without one)."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement as asyncpg takes it, and how to turn the caller's values into its arguments and back."""

    sql: str
    binds: tuple[tuple[str, Any, Processor], ...]
    """Per ``$n``, in order: the bind's name, its default (``_REQUIRED`` when none) and its type's processor."""
    results: tuple[Processor, ...] | None
    """Per result column, its type's processor; ``None`` when no column has one."""


@lru_cache(maxsize=1024)
def _compiled(statement: Executable, dialect: Dialect) -> _Compiled | None:
    """Compile once per statement object (the hot statements are module constants or cached per shape), with the
    engine's dialect (its JSON serializer, the server's version); ``None`` for a statement whose SQL depends on
    its values (an ``IN`` with a list bound at execution), which the session sends."""
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
    """What SQLAlchemy does to a value of this type on its way out of asyncpg (``None``: nothing)."""
    if isinstance(type_, Float) and not type_.asdecimal:
        return None  # asyncpg returns a float already (SQLAlchemy asks for the column's type code to know that)
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

    __slots__ = ("_dialect", "_driver", "_engine", "_postgres", "_read_pool", "_session")

    def __init__(
        self,
        session: Callable[[], AsyncSession],
        engine: AsyncEngine,
        is_sqlite: bool,
        read_pool: ReadPool | None = None,
    ) -> None:
        self._session = session
        """The unit of work's session (opened by the call: a unit of work on the read pool opens none)."""
        self._postgres = not is_sqlite
        self._read_pool = read_pool
        """For a unit of work outside any transaction (PostgreSQL): each statement on a connection of this pool."""
        self._engine = engine.sync_engine
        self._dialect: Dialect = engine.dialect
        self._driver: Any = None
        """SQLAlchemy's adapter around the session's asyncpg connection, once a statement needed it."""

    async def rows(self, statement: Executable, values: Mapping[str, Any]) -> Sequence[Row]:
        """Every row the statement returns."""
        compiled = _compiled(statement, self._dialect) if self._postgres else None
        if compiled is None:
            return (await self._session().execute(statement, values)).all()
        records: Sequence[Row] = await self._fetch(compiled, _arguments(compiled, values))
        if compiled.results is None:
            return records
        return [
            tuple(
                value if process is None else process(value)
                for process, value in zip(compiled.results, record, strict=True)
            )
            for record in records
        ]

    async def first(self, statement: Executable, values: Mapping[str, Any]) -> Row | None:
        """The statement's first row, or ``None`` when it returns none."""
        rows = await self.rows(statement, values)
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
        compiled = _compiled(statement, self._dialect) if self._postgres else None
        if compiled is None:
            await self._session().execute(statement, values)
            return
        await self._fetch(compiled, _arguments(compiled, values))

    async def _fetch(self, compiled: _Compiled, arguments: list[Any]) -> Any:
        listeners = self._engine.dispatch.before_cursor_execute
        if listeners:  # the engine's statement listeners see these statements too (the statement-budget test)
            listeners(None, None, compiled.sql, arguments, None, False)
        if self._read_pool is not None:
            async with (await self._read_pool()).acquire() as connection:
                return await connection.fetch(compiled.sql, *arguments)
        driver = self._driver
        if driver is None:
            connection = await self._session().connection()
            driver = self._driver = (await connection.get_raw_connection()).dbapi_connection
        # The adapter's own rules: one statement at a time per connection, and its transaction begun lazily by
        # the first statement; SQLAlchemy commits or rolls back that transaction when the unit of work ends.
        async with driver._execute_mutex:
            if driver._transaction is None:
                await driver._start_transaction()
            return await driver._connection.fetch(compiled.sql, *arguments)
