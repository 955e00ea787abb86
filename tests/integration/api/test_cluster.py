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
    async with db.store() as store:
        return await run_maintenance(store, horde.ctx, now)


async def test_maintenance_skips_while_another_process_holds_the_lock(horde: Horde, postgres_only: None) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await _queue(horde, requester)
    assert (await horde.pop(owner))["ids"]
    later = time.time() + 10_000  # the lease has run out by then
    other = Database(horde.settings.resolved_database_url)  # another process's connection pool
    try:
        async with horde.db.store() as holder:
            assert await holder.queue.try_maintenance_lock()
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


async def test_a_connection_postgresql_closed_is_replaced_without_failing_a_call(
    horde: Horde, postgres_only: None
) -> None:
    """The pool hands back connections whose server end is gone (a restart, ``pg_terminate_backend``) on checkout,
    without a round trip per checkout; the next calls get fresh ones and answer as usual."""
    from sqlalchemy import make_url

    from tests.conftest import admin_execute

    account = await horde.register("survivor")
    for _ in range(3):
        assert (await horde.generate(account, params=SMALL)).status_code == 202
    database = make_url(horde.settings.resolved_database_url).database
    await admin_execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
        "AND pid <> pg_backend_pid()"
    )
    await asyncio.sleep(0.2)  # the event loop reads the closed sockets' ends
    for _ in range(3):
        answer = await horde.generate(account, params=SMALL)
        assert answer.status_code == 202, answer.text


@pytest.mark.parametrize("horde_settings", [{"check_cache_seconds": 60}])
async def test_checks_answer_from_memory_until_any_process_changes_the_request(
    horde: Horde, second: httpx.AsyncClient, postgres_only: None
) -> None:
    """Each process keeps a checked request's counters; a change made by the other process drops them (its
    announcement travels on PostgreSQL's NOTIFY), so no check reports a state older than the change."""
    requester, owner = await horde.register("req"), await horde.register("owner")
    request_id = await _queue(horde, requester)
    assert (await horde.check(request_id))["waiting"] == 1  # now remembered by the first server
    popped = await second.post(
        "/api/v2/generate/pop", json={"name": "w1", "models": ["stable_diffusion"]}, headers=owner.headers
    )
    assert popped.json()["ids"], popped.text

    async def first_server_sees_it() -> bool:
        return bool((await horde.check(request_id))["processing"] == 1)

    for _ in range(100):  # the notification arrives within milliseconds
        if await first_server_sees_it():
            break
        await asyncio.sleep(0.02)
    assert await first_server_sees_it()


async def _eventually(condition: Any) -> bool:
    """Whether ``condition()`` (awaitable) comes true within two seconds: an announcement's trip between processes."""
    for _ in range(100):
        if await condition():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_role_given_in_one_process_counts_at_once_in_the_other(
    horde: Horde, second: httpx.AsyncClient, postgres_only: None
) -> None:
    """Each process keeps recently used keys' accounts; a change of roles announces itself to every process."""
    admin, member = await horde.register("admin"), await horde.register("member")
    await horde.make_admin(admin)
    assert (await horde.client.get("/api/v2/find_user", headers=member.headers)).json()["trusted"] is False
    changed = await second.put(f"/api/v2/users/{member.id}", json={"trusted": True}, headers=admin.headers)
    assert changed.status_code == 200, changed.text

    async def trusted_in_the_first() -> bool:
        found = await horde.client.get("/api/v2/find_user", headers=member.headers)
        return bool(found.json()["trusted"])

    assert await _eventually(trusted_in_the_first)


async def test_a_worker_paused_in_one_process_is_paused_at_once_in_the_other(
    horde: Horde, second: httpx.AsyncClient, postgres_only: None
) -> None:
    """Each process keeps checked-in workers between writes of their rows; a change announces itself."""
    requester, owner, moderator = [await horde.register(n) for n in ("req", "owner", "mod")]
    await horde.set_user(moderator, is_moderator=True)
    assert (await horde.pop(owner, name="pausable"))["ids"] == []  # checked in, and kept, by the first server
    worker_id = (await horde.client.get("/api/v2/workers/name/pausable")).json()["id"]
    paused = await second.put(f"/api/v2/workers/{worker_id}", json={"paused": True}, headers=moderator.headers)
    assert paused.status_code == 200, paused.text

    async def forgotten_here() -> bool:
        return horde.ctx.workers.get("pausable") is None

    assert await _eventually(forgotten_here), "the change never reached the first server"
    await _queue(horde, requester)
    assert (await horde.pop(owner, name="pausable"))["ids"] == [], "a paused worker got a job"


async def test_an_idle_worker_gets_a_request_queued_in_the_other_process_at_once(
    horde: Horde, second: httpx.AsyncClient, postgres_only: None
) -> None:
    """An empty pop is answered from memory until an image joins the worker's models' queue, in any process."""
    requester, owner = await horde.register("req"), await horde.register("owner")
    for _ in range(2):
        assert (await horde.pop(owner, name="idle"))["ids"] == []  # the second from memory
    queued = await second.post(
        "/api/v2/generate/async",
        json={"prompt": "a lighthouse", "params": SMALL, "models": ["stable_diffusion"]},
        headers=requester.headers,
    )
    assert queued.status_code == 202, queued.text

    async def gets_it() -> bool:
        return bool((await horde.pop(owner, name="idle"))["ids"])

    assert await _eventually(gets_it)
