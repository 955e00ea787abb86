"""A new request's admission: its rank, whether its balance backs it, and the requester's usage, on both engines.

PostgreSQL usually admits and inserts a request in one statement whose limits are bound as numbers
(``IntakeRepository.admit``); SQLite, and PostgreSQL for the rarer cases (a downgrade, a Supporter, a refusal, a
standing that changed while it waited for the requester's row), take two steps with the rules in Python. These
tests hold both to the same rows, worked out here from the rules.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select

from openhorde.domain.queue.requests import AGEING_PRIORITY_PER_SECOND
from openhorde.storage.tables import Request, User
from openhorde.storage.urls import asyncpg_dsn
from tests.live_server import Account, Horde

SMALL = {"width": 64, "height": 64, "steps": 5}


async def _queue(horde: Horde, account: Account, **overrides: Any) -> Request:
    response = await horde.generate(account, params=SMALL, **overrides)
    assert response.status_code == 202, response.text
    async with horde.db.unit_of_work() as session:
        row = await session.get(Request, response.json()["id"])
        assert row is not None
        return row


async def _usage_requests(horde: Horde, account: Account) -> int:
    async with horde.db.unit_of_work() as session:
        return int((await session.execute(select(User.usage_requests).where(User.id == account.id))).scalar_one())


async def _charge_cents(horde: Horde) -> int:
    buyer = await horde.register("pricer")
    priced = await horde.generate(buyer, params=SMALL, dry_run=True)
    return round(float(priced.json()["kudos"]) * 100)


@pytest.mark.both_databases
async def test_a_request_ranks_by_its_balance_and_is_backed_while_the_balance_covers_the_queue(horde: Horde) -> None:
    charge = await _charge_cents(horde)
    assert charge > 0
    balance = 2 * charge + 1  # two requests' charges and a hundredth
    requester = await horde.register("requester", kudos=balance / 100)

    first = await _queue(horde, requester)
    assert first.queue_rank == balance / 100 - AGEING_PRIORITY_PER_SECOND * first.created_at  # to the last bit
    assert first.kudos_backed and first.charge_cents == charge
    second, third = await _queue(horde, requester), await _queue(horde, requester)
    assert second.kudos_backed, "the balance less the first request's charge still covers the second"
    assert not third.kudos_backed, "a hundredth left"
    assert third.queue_rank == balance / 100 - AGEING_PRIORITY_PER_SECOND * third.created_at
    assert await _usage_requests(horde, requester) == 3


@pytest.mark.both_databases
async def test_a_refused_request_is_not_counted_in_the_requesters_usage(horde: Horde) -> None:
    requester = await horde.register("greedy")
    await horde.set_user(requester, concurrency=1)
    await _queue(horde, requester)
    refused = await horde.generate(requester, params=SMALL)
    assert refused.status_code == 429 and refused.json()["rc"] == "TooManyPrompts"
    poor = await horde.generate(requester, params={"width": 1536, "height": 1536, "steps": 30})
    assert poor.status_code == 403 and poor.json()["rc"] == "KudosUpfront"
    assert await _usage_requests(horde, requester) == 1


@pytest.mark.postgres
async def test_a_request_that_waited_for_its_requesters_row_is_counted_once(horde: Horde) -> None:
    """Another request of theirs commits while this one waits for their row: the one statement's figures are stale,
    so it queues nothing (it counted the request all the same), and its next try queues it without counting it
    again."""
    requester = await horde.register("busy", kudos=50)
    holder = await asyncpg.connect(asyncpg_dsn(horde.db.url))
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("UPDATE users SET usage_requests = usage_requests + 1 WHERE id = $1", requester.id)
        waiting = asyncio.create_task(horde.generate(requester, params=SMALL))
        deadline = asyncio.get_running_loop().time() + 10
        while not await holder.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ):
            assert asyncio.get_running_loop().time() < deadline, "the request never waited for the row"
            assert not waiting.done(), (await waiting).text
            await asyncio.sleep(0.02)
        await transaction.commit()
        response = await waiting
    finally:
        await holder.close()
    assert response.status_code == 202, response.text
    assert await _usage_requests(horde, requester) == 2  # the other request's count and this one's
    async with horde.db.unit_of_work() as session:
        row = await session.get(Request, response.json()["id"])
    assert row is not None and row.queue_rank == 50 - AGEING_PRIORITY_PER_SECOND * row.created_at


@pytest.mark.both_databases
async def test_the_two_steps_standing_locks_and_reads_without_counting_what_a_try_counted(horde: Horde) -> None:
    requester = await horde.register("counted", kudos=12.34)
    async with horde.db.store() as store:
        first = await store.intake.standing(requester.id, now=1000.0)
        again = await store.intake.standing(requester.id, now=1000.0, count=False)
    assert first.balance_cents == again.balance_cents == 1234
    assert await _usage_requests(horde, requester) == 1
