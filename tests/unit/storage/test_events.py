"""Staged request events reach subscribers only when their transaction commits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openhorde.storage.db import Database
from openhorde.storage.events import (
    BATCH_LIMIT,
    Change,
    LocalBroker,
    PgNotifyBroker,
    decode,
    encode,
    open_broker,
)


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
            async with database.store() as store:
                async with store.savepoint():  # the unit of work begins its transaction
                    pass
                store.announce(Change("r1", "image", "j1"))
                raise RuntimeError("rolled back")
        assert not await first.wait(0.05)
        async with database.store() as store:
            async with store.savepoint():
                pass
            store.announce(Change("r1", "image", "j2"))
            await asyncio.sleep(0)
            assert not first.woken.is_set()  # not before the commit
        assert await first.wait(0.05)
        assert not await other.wait(0.05)
    assert not broker._subscribers  # unsubscribed at the end of the block


async def test_a_unit_of_work_that_began_no_transaction_publishes_when_it_ends(database: Database) -> None:
    """A pop whose one statement ran alone (PostgreSQL) commits nothing itself: its events go out as it ends."""
    broker = open_broker(database, None, "test:")
    with broker.subscribe("r1") as first:
        async with database.store() as store:
            store.announce(Change("r1", "started", "j1"))
            await asyncio.sleep(0)
            assert not first.woken.is_set()
        assert await first.wait(0.05)


async def test_a_database_without_a_broker_publishes_nothing(database: Database) -> None:
    async with database.store() as store:
        store.announce(Change("r1", "queued"))  # nowhere to go, and no error


def test_messages_round_trip_and_garbage_is_ignored() -> None:
    events = [Change("r1", "started", "j1"), Change("r1", "queued", None, ("sd", "Deliberate"))]
    assert decode(encode("me", events)) == ("me", events)
    for garbage in ("", "{", "[]", '{"r": "x"}', '{"o": "x", "e": [1]}', b"\xff"):
        assert decode(garbage) is None


def test_a_long_list_of_models_travels_as_any_model_and_a_full_batch_fits_a_notify() -> None:
    many = tuple(f"model-{i:03d}-{'x' * 240}" for i in range(300))
    batch = [Change(str(uuid.uuid4()), "queued", None, many) for _ in range(BATCH_LIMIT)]
    message = encode("me", batch)
    assert len(message.encode()) < 8000
    decoded = decode(message)
    assert decoded is not None and all(change.models == () for change in decoded[1])


def test_a_process_ignores_its_own_messages_and_delivers_the_others() -> None:
    """Every listener hears its own NOTIFY too: those events were delivered at commit and must not be again."""
    broker = PgNotifyBroker("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never started: no connection
    heard: list[Change] = []
    broker.add_listener(heard.append)
    broker.received(encode(broker.origin, [Change("r1", "queued")]))
    assert heard == []
    broker.received(encode(uuid.uuid4().hex, [Change("r2", "started", "j2")]))
    assert heard == [Change("r2", "started", "j2")]
