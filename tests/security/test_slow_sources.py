"""No stall from slow senders: ten source images dripping one byte at a time hold nothing that others need.

The downloads run outside any database transaction under one total deadline, so heartbeat, check and pop
answer while they drip, and each slow request ends with a clear 400 once the deadline passes. Both
databases: on SQLite one held connection would stop the whole server.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from openhorde.storage.tables import Request
from tests.live_server import Horde
from tests.security.origin import serving_origin

# Dripping peers over real connections; both engines (one held SQLite connection would stop the server).
pytestmark = [pytest.mark.live, pytest.mark.both_databases]

DEADLINE_SECONDS = 3.0
SLOW_CLIENTS = 10


@pytest.fixture
def horde_settings() -> dict[str, Any]:
    # The dripping origin listens on loopback.
    return {"allow_private_addresses": True, "source_fetch_timeout_seconds": DEADLINE_SECONDS}


async def _until(condition: Any, seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (a condition on the origin's counter, polled briefly)
            await asyncio.sleep(0.02)


async def test_dripping_sources_stall_nobody_and_end_with_a_clear_error(horde: Horde) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    queued = (await horde.generate(requester)).json()["id"]
    async with serving_origin(drip_seconds=0.5) as origin:
        slow = [
            asyncio.create_task(horde.generate(requester, source_image=origin.url("/drip")))
            for _ in range(SLOW_CLIENTS)
        ]
        await _until(lambda: origin.dripping == SLOW_CLIENTS)
        handed_out = [(await horde.pop(owner)).get("id") for _ in range(3)]
        assert handed_out[0] is not None and handed_out[1:] == [None, None]
        assert (await horde.client.get("/api/v2/status/heartbeat")).status_code == 200
        assert (await horde.check(queued))["processing"] == 1
        assert not any(task.done() for task in slow), "the calls above waited for the slow downloads"
        answers = await asyncio.gather(*slow)
    for answer in answers:
        assert answer.status_code == 400
        assert answer.json()["rc"] == "SourceImageUrlInvalid"
        assert f"longer than {DEADLINE_SECONDS:g} s" in answer.json()["message"]
    async with horde.db.unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(Request)) == 1, "a slow request was queued"


async def test_a_worker_dripping_its_upload_stalls_nobody(horde: Horde) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    await horde.generate(requester)
    second = (await horde.generate(requester)).json()["id"]
    job = await horde.pop(owner)
    upload = urlsplit(job["r2_upload"])
    reader, writer = await asyncio.open_connection(upload.hostname, upload.port)
    writer.write(
        f"PUT {upload.path}?{upload.query} HTTP/1.1\r\nhost: {upload.netloc}\r\ncontent-length: 1000\r\n\r\n".encode()
    )
    writer.write(b"R")
    await writer.drain()
    try:
        handed_out = []
        for _ in range(3):
            await asyncio.sleep(0.2)
            writer.write(b"I")
            await writer.drain()
            handed_out.append((await horde.pop(owner, name="other-worker")).get("id"))
        assert handed_out[0] is not None and handed_out[1:] == [None, None]
        assert (await horde.check(second))["processing"] == 1
    finally:
        writer.close()
    assert not reader.at_eof(), "the server answered an upload that never finished"
