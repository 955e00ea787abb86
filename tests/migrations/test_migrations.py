"""Migrations: an empty database upgraded to head matches the tables exactly, on both engines.

These tests need an *empty* database, so they do not use ``database_url`` (which hands out a
migrated copy): SQLite gets a new file, PostgreSQL a new database that is dropped afterwards.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SAWarning

from openhorde.domain import accounts
from openhorde.storage.db import Database
from openhorde.storage.migrate import alembic_config, upgrade_to_head
from openhorde.storage.tables import Base, Request
from tests.conftest import admin_execute, postgres_url

# The migrations run on both engines.
pytestmark = pytest.mark.both_databases

# SQLite reports the expression indexes of the queues (``queue_rank DESC``) as plain column
# indexes on ``queue_rank``; Alembic cannot compare that with the model's textual
# ``queue_rank DESC`` element, so it always proposes dropping and re-adding them. We drop those
# pairs from the diff on SQLite only, and check the indexes' real definitions in
# ``test_queue_indexes_are_descending`` instead.
QUEUE_INDEXES = {
    "ix_requests_queue": "(queue_rank desc, id)",
    "ix_requests_queue_any_model": "(queue_rank desc, id)",
    "ix_requests_user_queued": "(user_id, queue_rank desc, id)",
    "ix_request_models_queue": "(model, queue_rank desc, request_id)",
    "ix_interrogation_forms_queue": "(priority desc, created_at, id)",
}
SQLITE_UNCOMPARABLE_INDEXES = frozenset(QUEUE_INDEXES)
# SQLite cannot reflect the expression indexes that keep worker and team names unique regardless of case
# (``lower(name)``, migration 0012): SQLAlchemy skips them when reflecting and Alembic when comparing, each with a
# warning. ``test_name_indexes_are_unique_on_lower_name`` reads their definitions from the catalogue instead.
NAME_INDEXES = {"ix_workers_name_lower": "workers", "ix_teams_name_lower": "teams"}


@contextmanager
def _sqlite_expression_indexes_skipped() -> Iterator[None]:
    """Reflect and compare without failing on the warnings that SQLite's expression indexes are skipped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
        yield


@pytest.fixture
async def empty_db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no tables at all (not even ``alembic_version``)."""
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
        try:
            yield db
        finally:
            await db.dispose()
        return
    name = f"openhorde_migration_{uuid.uuid4().hex[:12]}"
    await admin_execute(f'CREATE DATABASE "{name}"')
    db = Database(postgres_url(name))
    try:
        yield db
    finally:
        await db.dispose()
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    with _sqlite_expression_indexes_skipped():
        diff: list[Any] = list(compare_metadata(context, Base.metadata))
    if connection.dialect.name == "sqlite":
        diff = [
            change
            for change in diff
            if not (
                isinstance(change, tuple)
                and change[0] in {"add_index", "remove_index"}
                and change[1].name in SQLITE_UNCOMPARABLE_INDEXES
            )
        ]
    return diff


def _snapshot(connection: Connection) -> dict[str, Any]:
    """Tables, columns, indexes and the Alembic revision: enough to tell whether anything changed."""
    inspector = inspect(connection)
    tables = sorted(inspector.get_table_names())
    with _sqlite_expression_indexes_skipped():
        indexes = {t: sorted(i["name"] or "" for i in inspector.get_indexes(t)) for t in tables}
    return {
        "tables": tables,
        "columns": {t: [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t)] for t in tables},
        "indexes": indexes,
        "revision": MigrationContext.configure(connection).get_current_heads(),
    }


def _script_heads() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


async def test_empty_database_is_really_empty(empty_db: Database) -> None:
    async with empty_db.engine.connect() as connection:
        snapshot = await connection.run_sync(_snapshot)
    assert snapshot["tables"] == [] and snapshot["revision"] == ()


async def test_upgrade_to_head_matches_the_tables(empty_db: Database) -> None:
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        diff = await connection.run_sync(_schema_diff)
    assert diff == [], "the migrations and openhorde.storage.tables disagree; write a migration"


async def test_upgrading_twice_is_a_no_op(empty_db: Database) -> None:
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        before = await connection.run_sync(_snapshot)
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        after = await connection.run_sync(_snapshot)
    assert before["tables"], "the first upgrade created nothing"
    assert after == before


async def test_there_is_one_head_and_the_database_is_at_it(empty_db: Database) -> None:
    heads = _script_heads()
    assert len(heads) == 1, f"migration history has branched: {heads}"
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        current = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads())
    assert current == heads


INDEX_DEFINITION_SQL = {
    "sqlite": "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name",
    "postgresql": "SELECT indexdef FROM pg_indexes WHERE indexname = :name",
}


async def test_queue_indexes_are_descending(empty_db: Database) -> None:
    """The pop's indexes, read from the catalogue (autogenerate cannot compare them on SQLite)."""
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        query = text(INDEX_DEFINITION_SQL[connection.dialect.name])
        definitions = {
            name: " ".join((await connection.execute(query, {"name": name})).scalar_one().split()).lower()
            for name in QUEUE_INDEXES
        }
    for name, columns in QUEUE_INDEXES.items():
        assert columns in definitions[name], definitions[name]
    for name in ("ix_requests_queue", "ix_requests_queue_any_model"):
        assert " where " in definitions[name] and "'queued'" in definitions[name]
        assert "n_waiting > 0" in definitions[name]
    assert "has_model_list is false" in definitions["ix_requests_queue_any_model"]
    assert definitions["ix_request_models_queue"].endswith("where waiting")


async def test_downgrading_and_upgrading_again_keeps_the_schema_and_the_queue_index(empty_db: Database) -> None:
    """Every downgrade undoes its upgrade without rebuilding tables (which would drop the index's DESC)."""
    from alembic import command

    await upgrade_to_head(empty_db)
    async with empty_db.engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0001"))
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        assert await connection.run_sync(_schema_diff) == []
        query = text(INDEX_DEFINITION_SQL[connection.dialect.name])
        definition = (await connection.execute(query, {"name": "ix_requests_queue"})).scalar_one()
    assert "(queue_rank desc, id)" in " ".join(definition.split()).lower()


async def test_0011_keeps_queued_requests_in_the_model_queues_with_their_rank(empty_db: Database) -> None:
    """Upgrading a live horde: a queued request's model rows get its rank and whether images wait; an ended
    request's rows go."""
    from alembic import command

    async with empty_db.engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0010"))
    async with empty_db.store() as store:
        user = (await accounts.create_user(store, "secret", "upgrader")).user
    async with empty_db.unit_of_work() as session:
        rows = (("queued-1", "queued", 12.5), ("busy-1", "queued", 7.0), ("done-1", "done", 99.0))
        for request_id, state, rank in rows:
            await session.execute(insert(Request), [request_row(request_id, user.id, state, rank)])
            await session.execute(
                text("INSERT INTO request_models (request_id, model) VALUES (:id, 'stable_diffusion')"),
                {"id": request_id},
            )
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        query = text("SELECT request_id, model, queue_rank, waiting FROM request_models ORDER BY request_id")
        found = [tuple(row) for row in (await connection.execute(query)).all()]
    assert found == [("busy-1", "stable_diffusion", 7.0, False), ("queued-1", "stable_diffusion", 12.5, True)]


async def test_name_indexes_are_unique_on_lower_name(empty_db: Database) -> None:
    """Worker and team names are unique regardless of case, read from the catalogue (SQLite cannot reflect it)."""
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        query = text(INDEX_DEFINITION_SQL[connection.dialect.name])
        for name, table in NAME_INDEXES.items():
            definition = " ".join((await connection.execute(query, {"name": name})).scalar_one().split()).lower()
            assert definition.startswith(f"create unique index {name} on "), definition
            assert table in definition and "lower(" in definition and "name" in definition, definition


LATER_TEAM_ID = "2b1f0c9e-5d1a-4c2e-9f00-000000000002"


async def test_0012_renames_case_duplicate_names_and_then_refuses_them(empty_db: Database) -> None:
    """Upgrading a live horde whose worker and team names clash regardless of case: the oldest keeps its name,
    each later one gets "-" and the start of its id; afterwards the database itself refuses a new clash."""
    from alembic import command

    async with empty_db.engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0011"))
    async with empty_db.store() as store:
        user = (await accounts.create_user(store, "secret", "upgrader")).user
    async with empty_db.unit_of_work() as session:
        workers = (("w-3", "ALICE-GPU", 3.0), ("w-1", "Alice-GPU", 1.0), ("w-2", "alice-gpu", 2.0), ("w-4", "bob", 1.0))
        for worker_id, name, created_at in workers:
            await session.execute(
                text(
                    "INSERT INTO workers (id, user_id, name, created_at, last_check_in_at, bridge_agent, threads, "
                    "nsfw, max_pixels, allow_img2img, allow_painting, allow_post_processing, allow_controlnet, "
                    "allow_sdxl_controlnet, allow_lora, allow_unsafe_ipaddr, can_censor_nsfw, limit_max_steps, "
                    "extra_slow_worker, require_upfront_kudos, blacklist, priority_user_ids, capabilities_hash, "
                    "maintenance, paused, kudos_generated_cents, kudos_uptime_cents, fulfilments, megapixelsteps, "
                    "aborted_jobs, uncompleted_jobs, aborts_in_window, abort_window_started_at, uptime_seconds, "
                    "models) VALUES (:id, :user_id, :name, :created_at, 0, 'x', 1, false, 262144, true, true, true, "
                    "false, false, false, true, true, false, false, false, '[]', '[]', '', false, false, 0, 0, 0, 0, "
                    "0, 0, 0, 0, 0, '[]')"
                ),
                {"id": worker_id, "user_id": user.id, "name": name, "created_at": created_at},
            )
        long_name = "T" * 100
        for team_id, name, created_at in (("t-1", long_name, 1.0), (LATER_TEAM_ID, long_name.lower(), 2.0)):
            await session.execute(
                text("INSERT INTO teams (id, name, created_at) VALUES (:id, :name, :created_at)"),
                {"id": team_id, "name": name, "created_at": created_at},
            )
    await upgrade_to_head(empty_db)
    async with empty_db.engine.connect() as connection:
        found_workers = dict((await connection.execute(text("SELECT id, name FROM workers"))).all())
        found_teams = dict((await connection.execute(text("SELECT id, name FROM teams"))).all())
    assert found_workers == {"w-1": "Alice-GPU", "w-2": "alice-gpu-w-2", "w-3": "ALICE-GPU-w-3", "w-4": "bob"}
    assert found_teams == {"t-1": long_name, LATER_TEAM_ID: "t" * 91 + "-2b1f0c9e"}, "cut to fit the column"
    with pytest.raises(IntegrityError):
        async with empty_db.engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO teams (id, name, created_at) VALUES ('t-3', :name, 3.0)"), {"name": long_name.lower()}
            )


def request_row(request_id: str, user_id: int, state: str, rank: float) -> dict[str, Any]:
    return {
        "id": request_id,
        "user_id": user_id,
        "state": state,
        "created_at": 0.0,
        "last_activity_at": 0.0,
        "queue_rank": rank,
        "prompt": "an upgrade",
        "params": {"width": 64, "height": 64, "steps": 5},
        "n_total": 1,
        "n_waiting": 1 if request_id.startswith("queued") else 0,
        "width": 64,
        "height": 64,
        "pixels": 64 * 64,
        "accurate_steps": 5,
        "things": 64 * 64 * 5,
        "price_cents": 100,
        "charge_cents": 100,
    }
