"""Limits hold under concurrency: ten parallel calls never get more than the rule allows.

Each "check, then insert" limit is taken under a lock of the user's row (PostgreSQL) or in SQLite's one
write transaction at a time, so the ten calls are admitted one after another. PostgreSQL is where a
read-then-write would race; the tests run on both engines.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.live_server import Account, Horde

# Parallel calls race for the same rows: row locks on PostgreSQL, one writer at a time on SQLite.
pytestmark = pytest.mark.both_databases

PARALLEL = 10
SMALL = {"width": 64, "height": 64, "steps": 5}
BIG = {"width": 64, "height": 64, "steps": 60}
"""More than 50 steps: the price must be covered upfront."""


def _outcomes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter((r.status_code, r.json().get("rc", "") if r.status_code >= 400 else "") for r in responses)


async def _set(horde: Horde, account: Account, **fields: Any) -> None:
    await horde.set_user(account, **fields)


async def _balance(horde: Horde, account: Account) -> float:
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    return float(response.json()["kudos"])


async def test_parallel_requests_never_pass_the_concurrency_limit(horde: Horde) -> None:
    greedy = await horde.register("greedy")
    await _set(horde, greedy, concurrency=3)
    answers = await asyncio.gather(*(horde.generate(greedy, params=SMALL) for _ in range(PARALLEL)))
    assert _outcomes(answers) == {(202, ""): 3, (429, "TooManyPrompts"): PARALLEL - 3}


async def test_a_balance_for_one_upfront_request_admits_one_of_ten_and_pays_it_in_full(horde: Horde) -> None:
    buyer, owner = await horde.register("buyer"), await horde.register("owner")
    dry = await horde.generate(buyer, params=BIG, dry_run=True)
    price = float(dry.json()["kudos"])
    await horde.grant(buyer, price * 1.5)
    answers = await asyncio.gather(*(horde.generate(buyer, params=BIG) for _ in range(PARALLEL)))
    assert _outcomes(answers) == {(202, ""): 1, (403, "KudosUpfront"): PARALLEL - 1}

    job = await horde.pop(owner)
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    assert await _balance(horde, buyer) == pytest.approx(price * 0.5, abs=0.011), "the charge was not paid in full"


async def test_parallel_shared_key_creations_stop_at_the_maximum(horde: Horde) -> None:
    owner = await horde.register("owner")
    answers = await asyncio.gather(
        *(horde.client.put("/api/v2/sharedkeys", json={}, headers=owner.headers) for _ in range(PARALLEL))
    )
    maximum = horde.settings.sharedkeys.max_shared_keys
    assert _outcomes(answers) == {(200, ""): maximum, (403, "TooManySharedKeys"): PARALLEL - maximum}


async def test_parallel_requests_on_a_shared_key_stop_at_its_budget(horde: Horde) -> None:
    owner = await horde.register("owner", kudos=1000)
    price_cents = round(float((await horde.generate(owner, params=SMALL, dry_run=True)).json()["kudos"]) * 100)
    budget = 3 * price_cents // 100 + 1  # whole kudos: room for three requests, not four
    affordable = budget * 100 // price_cents
    key = (await horde.client.put("/api/v2/sharedkeys", json={"kudos": budget}, headers=owner.headers)).json()["id"]
    holder = Account(id=-1, username="holder", apikey=key)
    answers = await asyncio.gather(*(horde.generate(holder, params=SMALL) for _ in range(PARALLEL)))
    assert _outcomes(answers) == {(202, ""): affordable, (403, "SharedKeyInsufficientKudos"): PARALLEL - affordable}


async def test_parallel_transfers_never_overdraw_and_opposite_ones_do_not_deadlock(horde: Horde) -> None:
    alice, bob = await horde.register("alice", kudos=100), await horde.register("bob", kudos=100)

    def send(sender: Account, receiver: Account, amount: int) -> Any:
        body = {"username": receiver.username, "amount": amount}
        return horde.client.post("/api/v2/kudos/transfer", json=body, headers=sender.headers)

    answers = await asyncio.gather(*(send(alice, bob, 30) for _ in range(PARALLEL)))
    assert _outcomes(answers) == {(200, ""): 3, (400, "KudosTransferNotEnough"): PARALLEL - 3}
    crossing = await asyncio.gather(*(send(alice, bob, 1) if i % 2 else send(bob, alice, 1) for i in range(PARALLEL)))
    assert _outcomes(crossing) == {(200, ""): PARALLEL}
    assert await _balance(horde, alice) + await _balance(horde, bob) == 200


async def test_parallel_first_pops_stop_at_the_worker_invitations(horde: Horde) -> None:
    admin, member = await horde.register("admin"), await horde.register("member")
    await horde.make_admin(admin)
    await horde.client.put("/api/v2/status/modes", json={"invite_only": True}, headers=admin.headers)
    await _set(horde, member, worker_invited=2)
    answers = await asyncio.gather(
        *(
            horde.client.post("/api/v2/generate/pop", json={"name": f"box-{i}"}, headers=member.headers)
            for i in range(PARALLEL)
        )
    )
    assert _outcomes(answers) == {(200, ""): 2, (403, "WorkerInviteOnly"): PARALLEL - 2}


@pytest.mark.parametrize(
    "horde_settings",
    [
        {
            "rate_limits": "on",
            "anonymous_ip_concurrency": 3,
            "rate_limit_default": "",
            "rate_limit_generate_async": "",
            "rate_limit_generate_async_anonymous": "",
        }
    ],
)
async def test_parallel_anonymous_requests_from_one_address_stop_at_its_limit(horde: Horde) -> None:
    anonymous = Account(id=0, username="Anonymous#0", apikey="0000000000")
    answers = await asyncio.gather(*(horde.generate(anonymous, params=SMALL) for _ in range(PARALLEL)))
    assert _outcomes(answers) == {(202, ""): 3, (429, "TooManyPrompts"): PARALLEL - 3}
