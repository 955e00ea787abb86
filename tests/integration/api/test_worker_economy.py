"""The worker economy: uptime rewards, escrow of untrusted owners' rewards, automatic trust, workers that want
kudos-backed requests only, measured speed and automatic maintenance."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from openhorde.domain.kudos import ledger
from openhorde.domain.queue import leases
from openhorde.storage.tables import Job, Worker
from tests.live_server import Account, Horde

UPTIME_REWARD_ONE_MODEL = 52.0
"""50 + 2 per model, for a worker serving one model without LoRA."""


async def _user(horde: Horde, account: Account) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/users/{account.id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _worker(horde: Horde, name: str) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/workers/name/{name}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _set_user(horde: Horde, account: Account, **values: Any) -> None:
    await horde.set_user(account, **values)


async def _assert_escrow_matches_ledger(horde: Horde) -> int:
    """Every user's held kudos together equal the ledger's escrow account; returns that total."""
    async with horde.db.store() as store:
        report = await ledger.check_ledger(store)
    held, on_ledger = report.escrow_held_cents, report.escrow_account_cents
    assert held == on_ledger
    return held


async def _deliver(horde: Horde, requester: Account, owner: Account, name: str = "worker-1") -> float:
    """One image requested by ``requester`` and delivered by ``owner``'s worker; returns the reward."""
    assert (await horde.generate(requester)).status_code == 202
    job = await horde.pop(owner, name=name)
    assert job["ids"], job
    submitted = await horde.upload_and_submit(owner, job)
    assert submitted.status_code == 200, submitted.text
    return float(submitted.json()["reward"])


async def _moderator(horde: Horde) -> Account:
    moderator = await horde.register("moddy")
    await _set_user(horde, moderator, is_moderator=True)
    return moderator


async def _make_uptime_pass(horde: Horde, name: str, uptime: float) -> None:
    """Pretend the worker has ``uptime`` seconds online and last checked in 40 s ago (past the debounce)."""
    async with horde.db.unit_of_work() as session:
        await session.execute(
            update(Worker).where(Worker.name == name).values(uptime_seconds=uptime, last_check_in_at=time.time() - 40)
        )
    horde.ctx.workers.clear()  # as the 40 s would have: the server reads the worker's row again


# -- uptime -----------------------------------------------------------------------------------------------


async def test_uptime_reward_is_credited_once_per_interval(horde: Horde) -> None:
    owner = await horde.register("wally")
    await _set_user(horde, owner, is_trusted=True)
    assert (await horde.pop(owner))["ids"] == []

    await _make_uptime_pass(horde, "worker-1", 590)
    await horde.pop(owner)  # 590 s + 40 s: the first 600 s interval is complete
    worker = await _worker(horde, "worker-1")
    assert worker["kudos_details"]["uptime"] == UPTIME_REWARD_ONE_MODEL
    assert worker["kudos_rewards"] == UPTIME_REWARD_ONE_MODEL
    assert (await _user(horde, owner))["kudos"] == UPTIME_REWARD_ONE_MODEL

    await horde.pop(owner)  # within the debounce: no new uptime, nothing credited
    await _make_uptime_pass(horde, "worker-1", 590)
    await horde.pop(owner)  # the same interval again (a racing pop): recorded once only
    assert (await _user(horde, owner))["kudos"] == UPTIME_REWARD_ONE_MODEL

    await _make_uptime_pass(horde, "worker-1", 1190)
    await horde.pop(owner)  # the second interval
    assert (await _user(horde, owner))["kudos"] == 2 * UPTIME_REWARD_ONE_MODEL
    assert (await _worker(horde, "worker-1"))["kudos_details"]["uptime"] == 2 * UPTIME_REWARD_ONE_MODEL


async def test_a_worker_in_maintenance_earns_no_uptime(horde: Horde) -> None:
    owner = await horde.register("wally")
    await _set_user(horde, owner, is_trusted=True)
    assert (await horde.pop(owner))["ids"] == []
    worker_id = (await _worker(horde, "worker-1"))["id"]
    put = await horde.client.put(f"/api/v2/workers/{worker_id}", json={"maintenance": True}, headers=owner.headers)
    assert put.status_code == 200, put.text

    await _make_uptime_pass(horde, "worker-1", 590)
    response = await horde.client.post(
        "/api/v2/generate/pop", json={"name": "worker-1", "models": ["stable_diffusion"]}, headers=owner.headers
    )
    assert response.status_code == 403
    assert (await _worker(horde, "worker-1"))["kudos_details"]["uptime"] == 0
    assert (await _user(horde, owner))["kudos"] == 0


async def test_an_untrusted_owners_uptime_reward_goes_to_escrow(horde: Horde) -> None:
    owner = await horde.register("wally")
    assert (await horde.pop(owner))["ids"] == []
    await _make_uptime_pass(horde, "worker-1", 590)
    await horde.pop(owner)

    details = await _user(horde, owner)
    assert details["kudos"] == 0 and details["evaluating_kudos"] == UPTIME_REWARD_ONE_MODEL
    assert await _assert_escrow_matches_ledger(horde) == UPTIME_REWARD_ONE_MODEL * 100


# -- escrow and trust -------------------------------------------------------------------------------------


async def test_an_untrusted_owners_reward_is_split_and_released_once_when_a_moderator_trusts(horde: Horde) -> None:
    requester = await horde.register("alice", kudos=100)
    owner = await horde.register("wally")
    moderator = await _moderator(horde)

    reward = await _deliver(horde, requester, owner)
    details = await _user(horde, owner)
    assert reward > 0
    assert details["evaluating_kudos"] == pytest.approx(reward / 2, abs=0.01)
    assert details["kudos"] + details["evaluating_kudos"] == pytest.approx(reward)
    assert details["trusted"] is False
    assert await _assert_escrow_matches_ledger(horde) > 0

    for _ in range(2):  # trusting twice releases once
        trusted = await horde.client.put(f"/api/v2/users/{owner.id}", json={"trusted": True}, headers=moderator.headers)
        assert trusted.status_code == 200, trusted.text
        details = await _user(horde, owner)
        assert details["evaluating_kudos"] == 0 and details["kudos"] == pytest.approx(reward)
        assert await _assert_escrow_matches_ledger(horde) == 0

    second = await _deliver(horde, requester, owner)  # trusted: paid in full
    details = await _user(horde, owner)
    assert details["evaluating_kudos"] == 0 and details["kudos"] == pytest.approx(reward + second)


@pytest.mark.both_databases  # PostgreSQL leaves the trusting reward to the two-step settlement
async def test_an_owner_is_trusted_automatically_at_the_threshold(horde: Horde) -> None:
    requester = await horde.register("alice", kudos=100)
    owner = await horde.register("wally")
    admin = await horde.register("root")
    await horde.make_admin(admin)
    horde.settings.economy.trust_min_account_age_seconds = 0
    horde.settings.economy.trust_after_images = 2

    first = await _deliver(horde, requester, owner)
    horde.settings.economy.trust_after_kudos = first * 1.5  # the second image reaches it
    held = (await _user(horde, owner))["evaluating_kudos"]
    assert held == pytest.approx(first / 2, abs=0.01)

    second = await _deliver(horde, requester, owner)
    details = await _user(horde, owner)
    assert details["trusted"] is True
    assert details["evaluating_kudos"] == 0
    assert details["kudos"] == pytest.approx(first + second)  # the escrow released, the second paid in full
    assert await _assert_escrow_matches_ledger(horde) == 0

    third = await _deliver(horde, requester, owner)
    assert (await _user(horde, owner))["kudos"] == pytest.approx(first + second + third)

    log = (await horde.client.get("/api/v2/audit", headers=admin.headers)).json()
    trusts = [e for e in log["entries"] if e["action"] == "user.auto_trust"]
    assert len(trusts) == 1
    assert trusts[0]["actor_id"] is None and trusts[0]["target_id"] == str(owner.id)
    assert trusts[0]["details"]["released"] == pytest.approx(held)


@pytest.mark.both_databases
async def test_a_young_account_is_not_trusted_automatically(horde: Horde) -> None:
    requester = await horde.register("alice", kudos=100)
    owner = await horde.register("wally")
    horde.settings.economy.trust_after_kudos = 0.01  # earned at once, but the account is minutes old (7 days needed)

    reward = await _deliver(horde, requester, owner)
    details = await _user(horde, owner)
    assert details["trusted"] is False
    assert details["evaluating_kudos"] == pytest.approx(reward / 2, abs=0.01)

    await _set_user(horde, owner, created_at=time.time() - 8 * 24 * 3600)
    second = await _deliver(horde, requester, owner)
    details = await _user(horde, owner)
    assert details["trusted"] is True and details["evaluating_kudos"] == 0
    assert details["kudos"] == pytest.approx(reward + second)


@pytest.mark.both_databases
async def test_escrow_off_pays_untrusted_owners_in_full(horde: Horde) -> None:
    requester = await horde.register("alice", kudos=100)
    owner = await horde.register("wally")
    horde.settings.economy.escrow_share = 0

    reward = await _deliver(horde, requester, owner)
    details = await _user(horde, owner)
    assert details["evaluating_kudos"] == 0 and details["kudos"] == pytest.approx(reward)


async def test_an_untrusted_owner_serving_their_own_request_does_not_go_below_zero(horde: Horde) -> None:
    owner = await horde.register("wally")
    await _deliver(horde, owner, owner)
    details = await _user(horde, owner)
    assert details["kudos"] >= 0 and details["evaluating_kudos"] > 0


# -- matching and speed -----------------------------------------------------------------------------------


async def test_a_require_upfront_kudos_worker_gets_only_kudos_backed_requests(horde: Horde) -> None:
    poor, rich = await horde.register("poor"), await horde.register("rich", kudos=100)
    owner = await horde.register("wally")
    poor_id = (await horde.generate(poor)).json()["id"]

    skipped = await horde.pop(owner, name="picky", require_upfront_kudos=True)
    assert skipped["ids"] == [] and skipped["skipped"].get("kudos") == 1

    rich_id = (await horde.generate(rich)).json()["id"]
    job = await horde.pop(owner, name="picky", require_upfront_kudos=True)
    assert job["ids"] and job["id"] is not None
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    assert (await horde.check(rich_id))["finished"] == 1
    assert (await horde.check(poor_id))["finished"] == 0

    other = await horde.pop(owner, name="easy")  # a worker without the flag serves the other one
    assert other["ids"]
    assert (await horde.upload_and_submit(owner, other)).status_code == 200
    assert (await horde.check(poor_id))["finished"] == 1


async def test_speed_is_measured_per_job_as_a_moving_average(horde: Horde) -> None:
    requester = await horde.register("alice", kudos=500)
    owner = await horde.register("wally")
    await _set_user(horde, owner, is_trusted=True)
    params = {"width": 512, "height": 512, "steps": 20}  # 5.24 megapixelsteps

    for took in (10, 5):
        assert (await horde.generate(requester, params=params)).status_code == 202
        job = await horde.pop(owner)
        async with horde.db.unit_of_work() as session:
            await session.execute(update(Job).where(Job.id == job["ids"][0]).values(started_at=time.time() - took))
        assert (await horde.upload_and_submit(owner, job)).status_code == 200
        if took == 10:
            assert (await _worker(horde, "worker-1"))["performance"] == "0.5 megapixelsteps per second"

    # 0.8 × 0.52 + 0.2 × 1.05 megapixelsteps per second
    assert (await _worker(horde, "worker-1"))["performance"] == "0.6 megapixelsteps per second"


# -- automatic maintenance --------------------------------------------------------------------------------


async def _fault(horde: Horde, owner: Account, job: dict[str, Any]) -> None:
    body = {"id": job["ids"][0], "generation": None, "state": "faulted", "seed": 1}
    response = await horde.client.post("/api/v2/generate/submit", json=body, headers=owner.headers)
    assert response.status_code == 200, response.text


async def _pop_raw(horde: Horde, owner: Account, name: str = "worker-1") -> httpx.Response:
    body = {"name": name, "models": ["stable_diffusion"]}
    return await horde.client.post("/api/v2/generate/pop", json=body, headers=owner.headers)


async def test_a_worker_that_aborts_too_many_jobs_goes_into_maintenance(horde: Horde) -> None:
    requester, owner = await horde.register("alice"), await horde.register("wally")
    admin = await horde.register("root")
    await horde.make_admin(admin)
    horde.settings.economy.worker_max_aborts_per_hour = 2
    await horde.generate(requester)
    await horde.generate(requester)

    for _ in range(3):
        await _fault(horde, owner, await horde.pop(owner))
    refused = await _pop_raw(horde, owner)
    assert refused.status_code == 403 and refused.json()["rc"] == "WorkerMaintenance"
    assert "aborted 3 jobs within an hour" in refused.json()["message"]

    worker = await _worker(horde, "worker-1")
    assert worker["maintenance_mode"] is True
    log = (await horde.client.get("/api/v2/audit", headers=admin.headers)).json()
    entry = next(e for e in log["entries"] if e["action"] == "worker.auto_maintenance")
    assert entry["actor_id"] is None and entry["target_id"] == worker["id"]
    assert entry["details"]["aborted_jobs"] == 3

    # Fixed, the owner takes it out of maintenance and it works again; the count started afresh.
    put = await horde.client.put(f"/api/v2/workers/{worker['id']}", json={"maintenance": False}, headers=owner.headers)
    assert put.status_code == 200, put.text
    job = await horde.pop(owner)
    assert job["ids"]
    assert (await horde.upload_and_submit(owner, job)).status_code == 200


async def test_aborts_below_the_limit_or_in_an_old_window_do_not_trigger_maintenance(horde: Horde) -> None:
    requester, owner = await horde.register("alice"), await horde.register("wally")
    horde.settings.economy.worker_max_aborts_per_hour = 2
    await horde.generate(requester)

    for _ in range(2):
        await _fault(horde, owner, await horde.pop(owner))
    assert (await _pop_raw(horde, owner)).status_code == 200  # 2 aborts: not more than 2

    async with horde.db.unit_of_work() as session:  # the window began over an hour ago
        await session.execute(
            update(Worker).where(Worker.name == "worker-1").values(abort_window_started_at=time.time() - 4000)
        )
    await horde.generate(requester)
    await _fault(horde, owner, await horde.pop(owner))  # starts a new window: 1 abort
    assert (await _pop_raw(horde, owner)).status_code == 200
    assert (await _worker(horde, "worker-1"))["maintenance_mode"] is False


async def test_expired_leases_count_as_aborts_too(horde: Horde) -> None:
    requester, owner = await horde.register("alice"), await horde.register("wally")
    horde.settings.economy.worker_max_aborts_per_hour = 0
    await horde.generate(requester)
    job = await horde.pop(owner)
    async with horde.db.unit_of_work() as session:
        await session.execute(update(Job).where(Job.id == job["ids"][0]).values(deadline_at=time.time() - 1))
    async with horde.db.store() as store:
        assert (await leases.run_maintenance(store, horde.ctx, time.time())).expired_jobs == 1

    worker = await _worker(horde, "worker-1")
    assert worker["maintenance_mode"] is True
    refused = await _pop_raw(horde, owner)
    assert refused.status_code == 403 and "aborted 1 jobs within an hour" in refused.json()["message"]
