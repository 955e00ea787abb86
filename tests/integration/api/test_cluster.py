"""Several server processes on one PostgreSQL database: periodic duties run once, jobs and kudos once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from openhorde.domain.queue.leases import MaintenanceReport, run_maintenance
from openhorde.storage import locks
from openhorde.storage.db import Database
from openhorde.storage.tables import Job, Request
from tests.live_server import Account, Horde, second_server, webp_bytes

pytestmark = pytest.mark.postgres

SMALL = {"width": 64, "height": 64, "steps": 5}


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("several server processes share a PostgreSQL database")


@pytest.fixture
async def second(horde: Horde, postgres_only: None) -> AsyncIterator[httpx.AsyncClient]:
    """A second server on the first one's database and data directory (same secret), on its own port."""
    async with second_server(horde) as client:
        yield client


async def _queue(horde: Horde, account: Account, n: int = 1) -> str:
    response = await horde.generate(account, params={**SMALL, "n": n}, models=["stable_diffusion"])
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _maintain(db: Database, horde: Horde, now: float) -> MaintenanceReport:
    async with db.unit_of_work() as session:
        return await run_maintenance(session, horde.ctx, now)


async def test_maintenance_skips_while_another_process_holds_the_lock(horde: Horde, postgres_only: None) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await _queue(horde, requester)
    assert (await horde.pop(owner))["ids"]
    later = time.time() + 10_000  # the lease has run out by then
    other = Database(horde.settings.resolved_database_url)  # another process's connection pool
    try:
        async with horde.db.unit_of_work() as holder:
            assert await locks.try_cluster_lock(holder, locks.MAINTENANCE_LOCK)
            blocked = await _maintain(other, horde, later)
            assert blocked.skipped and blocked.expired_jobs == 0
        # The holder's transaction ended: the lock is free again and the pass does the work once.
        done = await _maintain(other, horde, later)
        assert not done.skipped and done.expired_jobs == 1
        assert (await _maintain(horde.db, horde, later)).expired_jobs == 0
    finally:
        await other.dispose()


async def test_concurrent_passes_across_processes_expire_each_lease_once(horde: Horde, postgres_only: None) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    for _ in range(6):
        await _queue(horde, requester)
    for i in range(6):
        assert (await horde.pop(owner, name=f"w{i}"))["ids"]
    later = time.time() + 10_000
    pools = [Database(horde.settings.resolved_database_url) for _ in range(4)]
    try:
        reports = await asyncio.gather(*(_maintain(db, horde, later) for db in pools for _ in range(2)))
    finally:
        for db in pools:
            await db.dispose()
    assert sum(r.expired_jobs for r in reports) == 6
    assert sum(1 for r in reports if r.expired_jobs) == 1, reports
    async with horde.db.unit_of_work() as session:
        waiting = list(await session.scalars(select(Request.n_waiting)))
        faulted = list(await session.scalars(select(Request.n_faulted)))
    assert waiting == [1] * 6 and faulted == [1] * 6  # returned to the queue exactly once each


async def test_two_servers_hand_out_and_pay_each_job_once(
    horde: Horde, second: httpx.AsyncClient, postgres_only: None
) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    total = 0
    for i in range(10):
        await _queue(horde, requester, n=1 + i % 2)
        total += 1 + i % 2
    clients = [horde.client, second]

    async def pop(i: int) -> dict[str, Any]:
        body = {"name": f"w{i % 6}", "models": ["stable_diffusion"]}
        answer = await clients[i % 2].post("/api/v2/generate/pop", json=body, headers=owner.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    answers = list(await asyncio.gather(*(pop(i) for i in range(36))))
    # SKIP LOCKED lets a pop pass over rows another pop holds, so a burst may leave some images; drain them.
    for i in range(2 * total):
        answers.append(await pop(i))
    handed = [(job_id, url) for a in answers for job_id, url in zip(a["ids"], a.get("r2_uploads", []), strict=True)]
    assert len(handed) == len({job_id for job_id, _ in handed}) == total

    async def submit_everywhere(job_id: str, url: str) -> list[int]:
        assert (await horde.client.put(url, content=webp_bytes())).status_code == 200
        body = {"id": job_id, "generation": "R2", "state": "ok", "seed": 1}
        sent = [c.post("/api/v2/generate/submit", json=body, headers=owner.headers) for c in clients for _ in range(2)]
        return sorted(r.status_code for r in await asyncio.gather(*sent))

    outcomes = await asyncio.gather(*(submit_everywhere(job_id, url) for job_id, url in handed))
    assert all(codes == [200, 400, 400, 400] for codes in outcomes), outcomes
    async with horde.db.unit_of_work() as session:
        states = list(await session.scalars(select(Job.state)))
    assert states == ["done"] * total
    # Counted and paid once per job (the fixture checks that the ledger balances).
    owner_record = (await horde.client.get(f"/api/v2/users/{owner.id}")).json()
    assert owner_record["contributions"]["fulfillments"] == total
