"""Staged request events reach subscribers only when their transaction commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from openhorde.storage.db import Database
from openhorde.storage.events import LocalBroker, RequestEvent, decode, open_broker, stage


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}")
    yield db
    await db.dispose()


async def test_committed_events_wake_subscribers_and_rolled_back_ones_do_not(database: Database) -> None:
    broker = open_broker(database, None, "test:")
    assert isinstance(broker, LocalBroker)
    with broker.subscribe("r1") as first, broker.subscribe("r2") as other:
        with pytest.raises(RuntimeError):
            async with database.unit_of_work() as session:
                await session.execute(text("SELECT 1"))
                stage(session, RequestEvent("r1", "image", "j1"))
                raise RuntimeError("rolled back")
        assert not await first.wait(0.05)
        async with database.unit_of_work() as session:
            await session.execute(text("SELECT 1"))
            stage(session, RequestEvent("r1", "image", "j2"))
            assert not first.woken.is_set()  # not before the commit
        assert await first.wait(0.05)
        assert not await other.wait(0.05)
    assert not broker._subscribers  # unsubscribed at the end of the block


async def test_a_database_without_a_broker_stages_nothing(database: Database) -> None:
    async with database.unit_of_work() as session:
        stage(session, RequestEvent("r1", "queued"))
        assert "openhorde.events.staged" not in session.info


def test_messages_round_trip_and_garbage_is_ignored() -> None:
    event = RequestEvent("r1", "started", "j1")
    assert decode(event.encode("me")) == ("me", event)
    assert decode(RequestEvent("r1", "queued").encode("me")) == ("me", RequestEvent("r1", "queued", None))
    for garbage in ("", "{", "[]", '{"r": "x"}', b"\xff"):
        assert decode(garbage) is None
