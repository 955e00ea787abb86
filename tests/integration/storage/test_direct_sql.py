"""The hot statements' executor: the same rows as the session, in the same transaction, seen by the same listeners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, bindparam, event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.db import Database
from openhorde.storage.direct_sql import DirectSql

pytestmark = pytest.mark.both_databases

_METADATA = MetaData()
PROBES = Table(
    "direct_probes",
    _METADATA,
    Column("id", Integer, primary_key=True),
    Column("doc", JSON),
    Column("note", String(40)),
    Column("hits", Integer, nullable=False),
)
INSERT = insert(PROBES).values(id=bindparam("id"), doc=bindparam("doc"), note=bindparam("note"), hits=0)
READ = select(PROBES.c.id, PROBES.c.doc, PROBES.c.note, PROBES.c.hits).where(PROBES.c.id == bindparam("probe"))
HIT = update(PROBES).where(PROBES.c.id == bindparam("probe")).values(hits=PROBES.c.hits + 1).returning(PROBES.c.hits)
COUNT_WITH_DEFAULT = select(func.coalesce(func.max(PROBES.c.hits), 7))  # 7 is a bind SQLAlchemy fills in


@pytest.fixture
async def db(migrated_database: Database) -> AsyncIterator[Database]:
    async with migrated_database.engine.begin() as connection:
        await connection.run_sync(_METADATA.create_all)
    yield migrated_database


@asynccontextmanager
async def unit_of_work(db: Database) -> AsyncIterator[tuple[DirectSql, AsyncSession]]:
    """A unit of work's session, and the executor on it (as ``Store`` makes them)."""
    async with db.unit_of_work() as session:
        yield DirectSql(lambda: session, db.engine, db.is_sqlite), session


async def _read(db: Database, probe_id: int) -> Any:
    async with unit_of_work(db) as (sql, _session):
        return await sql.first(READ, {"probe": probe_id})


async def test_rows_are_what_the_session_returns(db: Database) -> None:
    doc = {"loras": [{"name": "x", "strength": 0.5}], "n": 2}
    async with unit_of_work(db) as (sql, _session):
        await sql.execute(INSERT, {"id": 1, "doc": doc, "note": "ü"})
        await sql.execute(INSERT, {"id": 2, "doc": None, "note": None})

    async with unit_of_work(db) as (sql, session):
        direct = [tuple(await sql.one(READ, {"probe": probe})) for probe in (1, 2)]
        through_session = [tuple((await session.execute(READ, {"probe": probe})).one()) for probe in (1, 2)]
    assert direct == through_session == [(1, doc, "ü", 0), (2, None, None, 0)]


async def test_a_bind_with_a_value_in_the_statement_needs_none_from_the_caller(db: Database) -> None:
    async with unit_of_work(db) as (sql, _session):
        assert await sql.scalar(COUNT_WITH_DEFAULT, {}) == 7


async def test_a_missing_value_is_an_error_not_a_null(db: Database) -> None:
    async with unit_of_work(db) as (sql, _session):
        with pytest.raises(Exception, match="note"):
            await sql.execute(INSERT, {"id": 3, "doc": None})


async def test_direct_statements_commit_and_roll_back_with_the_unit_of_work(db: Database) -> None:
    async with unit_of_work(db) as (sql, _session):
        await sql.execute(INSERT, {"id": 1, "doc": [], "note": "kept"})
        assert await sql.scalar(HIT, {"probe": 1}) == 1

    with pytest.raises(RuntimeError):
        async with unit_of_work(db) as (sql, session):
            assert await sql.scalar(HIT, {"probe": 1}) == 2
            await session.execute(update(PROBES).values(note="through the session"))
            raise RuntimeError("the unit of work fails")

    assert tuple(await _read(db, 1) or ()) == (1, [], "kept", 1)


async def test_a_session_made_after_the_hot_statements_joins_their_transaction(db: Database) -> None:
    """On PostgreSQL a unit of work whose hot statements come first runs them on a connection of its own, with no
    session; a session it needs afterwards must share their transaction: see their writes, and commit or roll
    back with them."""
    joined = update(PROBES).where(PROBES.c.id == bindparam("probe")).values(note="joined")
    with pytest.raises(RuntimeError):
        async with db.store() as store:
            await store._direct.execute(INSERT, {"id": 1, "doc": None, "note": "direct"})
            assert (await store._session.execute(joined, {"probe": 1})).rowcount == 1  # sees the direct row
            raise RuntimeError("the unit of work fails")
    assert await _read(db, 1) is None  # both undone

    async with db.store() as store:
        await store._direct.execute(INSERT, {"id": 1, "doc": None, "note": "direct"})
        assert (await store._session.execute(joined, {"probe": 1})).rowcount == 1
        assert await store._direct.scalar(HIT, {"probe": 1}) == 1  # and the direct statements see the session's
    assert tuple(await _read(db, 1) or ()) == (1, None, "joined", 1)


async def test_hot_statements_alone_commit_and_roll_back_with_the_unit_of_work(db: Database) -> None:
    async with db.store() as store:
        await store._direct.execute(INSERT, {"id": 1, "doc": [], "note": "kept"})
        assert db.is_sqlite or (store._opened is None and store._connection is not None)  # no session opened
    with pytest.raises(RuntimeError):
        async with db.store() as store:
            assert await store._direct.scalar(HIT, {"probe": 1}) == 1
            raise RuntimeError("the unit of work fails")
    assert tuple(await _read(db, 1) or ()) == (1, [], "kept", 0)
    async with db.store() as store:  # and the connection went back to the pool in a usable state
        assert await store._direct.scalar(HIT, {"probe": 1}) == 1


async def test_an_in_list_bound_at_execution_goes_through_the_session(db: Database) -> None:
    async with unit_of_work(db) as (sql, _session):
        for probe in (1, 2, 3):
            await sql.execute(INSERT, {"id": probe, "doc": None, "note": str(probe)})
    some = select(PROBES.c.note).where(PROBES.c.id.in_(bindparam("ids", expanding=True))).order_by(PROBES.c.id)
    async with unit_of_work(db) as (sql, _session):
        assert [row[0] for row in await sql.rows(some, {"ids": [1, 3]})] == ["1", "3"]


async def test_the_engines_statement_listeners_see_direct_statements(db: Database) -> None:
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        await _read(db, 1)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listen)
    assert [statement for statement in seen if "FROM direct_probes" in statement] == [seen[-1]]


async def test_reads_outside_a_transaction_need_no_session(db: Database) -> None:
    doc = {"steps": 30, "loras": []}
    async with unit_of_work(db) as (sql, _session):
        await sql.execute(INSERT, {"id": 1, "doc": doc, "note": "read back"})

    async with db.readers() as session:
        reader = DirectSql(lambda: session, db.engine, db.is_sqlite, db.reads)
        rows = [tuple(row) for row in await reader.rows(READ, {"probe": 1})]
        assert not session.in_transaction()  # the readers' own connections, not the session's
    assert rows == [(1, doc, "read back", 0)]


async def test_several_rows_go_in_one_send(db: Database) -> None:
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    rows = [{"id": probe, "doc": {"n": probe}, "note": str(probe)} for probe in (1, 2, 3)]
    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        async with unit_of_work(db) as (sql, _session):
            await sql.execute_many(INSERT, rows)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listen)
    assert [statement for statement in seen if "direct_probes" in statement] == [seen[-1]]
    for probe in (1, 2, 3):
        assert tuple(await _read(db, probe) or ()) == (probe, {"n": probe}, str(probe), 0)
