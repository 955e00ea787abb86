"""The PostgreSQL event broker when its connection is cut: caches are told to forget, and it reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import make_url

from openhorde.storage.db import Database
from openhorde.storage.events import RESYNC, Change, PgNotifyBroker, open_broker
from tests.conftest import admin_execute

pytestmark = pytest.mark.postgres


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition`` (what it watches arrives on another connection: there is no event to wait on)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_cut_connection_resyncs_the_caches_and_events_flow_again(migrated_database: Database) -> None:
    """Events other processes sent while the listening connection was gone are lost: the broker says ``RESYNC``
    when the connection drops and again once it listens anew, and then carries events as before."""
    here = open_broker(migrated_database, None, "test:")
    other = open_broker(migrated_database, None, "test:")
    assert isinstance(here, PgNotifyBroker) and isinstance(other, PgNotifyBroker)
    heard: list[Change] = []
    here.add_listener(heard.append)
    await here.start()
    await other.start()
    try:
        await _until(lambda: heard.count(RESYNC) == 1)  # connected
        database = make_url(migrated_database.url).database
        await admin_execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
            "AND query LIKE 'LISTEN%'"
        )
        await _until(lambda: heard.count(RESYNC) >= 3)  # dropped, then listening again
        change = Change("r1", "queued", models=("m",))

        def sent_and_heard() -> bool:
            other.publish_nowait([change])
            return change in heard

        await _until(sent_and_heard)
    finally:
        await here.close()
        await other.close()
