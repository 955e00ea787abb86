"""How many images a pop takes, for how long, with which seeds: the same numbers on both engines.

PostgreSQL works them out in SQL, in the pop's one statement; SQLite in Python (``domain/queue/matching.py``'s
``safe_amount``, ``job_ttl_seconds`` and ``seeds.job_seed``). The expected figures below are those rules worked
by hand, so a drift between the two shows up here on one engine or the other.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from openhorde.storage.tables import Job, Request
from tests.live_server import Account, Horde

pytestmark = pytest.mark.both_databases

BIG = 1024 * 1024
"""A worker taking 1024×1024: four 512×512 images fit a batch of ``amount`` 4 (1048576 / 3.5 × 4 / 262144 = 4.57)."""


async def _queue(horde: Horde, account: Account, n: int = 6, steps: int = 30, **overrides: Any) -> str:
    params = {
        "width": 512,
        "height": 512,
        "steps": steps,
        "n": n,
        "sampler_name": "k_euler",
        **overrides.pop("params", {}),
    }
    response = await horde.generate(account, params=params, **overrides)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _pop(horde: Horde, owner: Account, **body: Any) -> dict[str, Any]:
    return await horde.pop(owner, name="batcher", max_pixels=BIG, amount=4, **body)


@pytest.fixture
async def requester(horde: Horde) -> Account:
    return await horde.register("requester", kudos=10_000)


@pytest.fixture
async def owner(horde: Horde) -> Account:
    return await horde.register("owner")


async def test_a_batch_holds_what_the_worker_s_pixels_allow(horde: Horde, requester: Account, owner: Account) -> None:
    await _queue(horde, requester)
    job = await _pop(horde, owner)
    assert len(job["ids"]) == 4 and len(job["r2_uploads"]) == 4  # round(4.57) = 5, but 4 were asked for
    assert job["ttl"] == 150  # 30 + 2 × 30 steps = 90, raised to the 150 s floor


async def test_post_processors_weigh_on_a_batch(horde: Horde, requester: Account, owner: Account) -> None:
    await _queue(horde, requester, params={"post_processing": ["GFPGAN", "RealESRGAN_x4plus"]})
    job = await _pop(horde, owner)
    assert len(job["ids"]) == 3  # each image weighs 1 + 2 × 0.4 = 1.8: round(4.57 / 1.8) = round(2.54)


async def test_a_request_without_batching_gives_one_image(horde: Horde, requester: Account, owner: Account) -> None:
    await _queue(horde, requester, disable_batching=True)
    assert len((await _pop(horde, owner))["ids"]) == 1


async def test_a_batch_never_takes_more_than_waits(horde: Horde, requester: Account, owner: Account) -> None:
    await _queue(horde, requester, n=2)
    assert len((await _pop(horde, owner))["ids"]) == 2


async def test_the_lease_grows_with_the_work_and_for_slow_workers(
    horde: Horde, requester: Account, owner: Account
) -> None:
    request_id = await _queue(horde, requester, n=2, steps=100)
    async with horde.db.unit_of_work() as session:  # a ControlNet request doubles the lease
        await session.execute(update(Request).where(Request.id == request_id).values(has_controlnet=True))
    await _queue(horde, requester, n=1, steps=100)
    slow = {"max_pixels": BIG, "amount": 1, "extra_slow_worker": True, "allow_controlnet": True}
    job = await horde.pop(owner, name="slowpoke", **slow)  # the older request first
    assert job["ttl"] == 1380  # (30 + 2 × 100) × 2 for ControlNet = 460, × 3 for an extra-slow worker
    job = await horde.pop(owner, name="quick", max_pixels=BIG, amount=1)  # takes no ControlNet: the other one
    assert job["ttl"] == 230


async def test_seeds_follow_the_variation_across_batches(horde: Horde, requester: Account, owner: Account) -> None:
    await _queue(horde, requester, n=4, params={"seed": "100", "seed_variation": 7})
    first = await horde.pop(owner, name="seeder", max_pixels=BIG, amount=2)
    second = await horde.pop(owner, name="seeder", max_pixels=BIG, amount=2)
    assert (first["payload"]["seed"], second["payload"]["seed"]) == ("100", "114")  # images 0 and 2: 100 + 7 × 2
    async with horde.db.unit_of_work() as session:
        seeds = dict((await session.execute(select(Job.id, Job.seed))).all())
    assert [seeds[job_id] for job_id in first["ids"] + second["ids"]] == [100, 107, 114, 121]


async def test_random_seeds_differ_between_images(horde: Horde, requester: Account, owner: Account) -> None:
    await _queue(horde, requester, n=4)
    job = await _pop(horde, owner)
    async with horde.db.unit_of_work() as session:
        seeds = [seed for (seed,) in (await session.execute(select(Job.seed))).all()]
    assert len(seeds) == 4 and len(set(seeds)) == 4 and all(0 <= seed < 2**32 for seed in seeds)
    assert job["payload"]["seed"] in {str(seed) for seed in seeds}
