"""``/stats/img/*`` and ``/stats/text/*``: counters moved by delivered images, through HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any

import pytest

from openhorde.api.app import _maintenance_loop, flush_tallies
from openhorde.domain.stats import DAY_SECONDS
from openhorde.storage.db import Database
from tests.live_server import Account, Horde

PERIODS = ("minute", "hour", "day", "month", "total")


async def _deliver(horde: Horde, owner: Account, requester: Account, n: int, **params: Any) -> None:
    created = await horde.generate(requester, params={"width": 64, "height": 64, "steps": 5, "n": n, **params})
    assert created.status_code == 202, created.text
    job = await horde.pop(owner, amount=n)
    for index in range(len(job["ids"])):
        assert (await horde.upload_and_submit(owner, job, index)).status_code == 200


async def _totals(horde: Horde) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/stats/img/totals")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.both_databases  # the counters' upsert is each engine's own statement
async def test_totals_count_delivered_images_and_their_pixelsteps(horde: Horde) -> None:
    assert await _totals(horde) == {period: {"images": 0, "ps": 0} for period in PERIODS}
    owner, requester = await horde.register("wally"), await horde.register("alice")
    await _deliver(horde, owner, requester, 2)
    await _deliver(horde, owner, requester, 1, steps=10)

    await flush_tallies(horde.db, horde.ctx)
    totals = await _totals(horde)
    expected = {"images": 3, "ps": 2 * 64 * 64 * 5 + 64 * 64 * 10}
    assert totals == {period: expected for period in PERIODS}

    # A second flush adds only what was delivered since.
    await _deliver(horde, owner, requester, 1)
    await flush_tallies(horde.db, horde.ctx)
    await flush_tallies(horde.db, horde.ctx)
    assert (await _totals(horde))["total"] == {"images": 4, "ps": expected["ps"] + 64 * 64 * 5}


async def test_a_faulted_job_counts_no_image(horde: Horde) -> None:
    owner, requester = await horde.register("wally"), await horde.register("alice")
    await horde.generate(requester)
    job = await horde.pop(owner)
    faulted = await horde.client.post(
        "/api/v2/generate/submit",
        json={"id": job["ids"][0], "generation": "", "state": "faulted", "seed": 1},
        headers=owner.headers,
    )
    assert faulted.status_code == 200, faulted.text
    await flush_tallies(horde.db, horde.ctx)
    assert (await _totals(horde))["total"] == {"images": 0, "ps": 0}


@pytest.mark.both_databases
async def test_windows_forget_old_buckets_and_keep_all_time(horde: Horde) -> None:
    tally = horde.ctx.image_stats
    now = time.time()
    tally.add("stable_diffusion", 100, now - 2 * 3_600)  # two hours ago: in the day, not in the hour
    tally.add("stable_diffusion", 100, now - 40 * DAY_SECONDS)  # outside the month
    async with horde.db.store() as store:
        await tally.flush(store, now)
    totals = await _totals(horde)
    assert totals["minute"]["images"] == totals["hour"]["images"] == 0
    assert totals["day"] == totals["month"] == {"images": 1, "ps": 100}
    assert totals["total"] == {"images": 2, "ps": 200}


async def test_models_count_images_per_model_and_filter_by_state(horde: Horde) -> None:
    owner, requester = await horde.register("wally"), await horde.register("alice")
    await _deliver(horde, owner, requester, 2)
    horde.ctx.image_stats.add("my-own-finetune", 64 * 64 * 5, time.time())
    await flush_tallies(horde.db, horde.ctx)

    every = (await horde.client.get("/api/v2/stats/img/models")).json()
    both = {"my-own-finetune": 1, "stable_diffusion": 2}
    assert every == {"day": both, "month": both, "total": both}
    known = (await horde.client.get("/api/v2/stats/img/models", params={"model_state": "known"})).json()
    assert known["day"] == {"stable_diffusion": 2}
    custom = (await horde.client.get("/api/v2/stats/img/models", params={"model_state": "custom"})).json()
    assert custom["total"] == {"my-own-finetune": 1}
    bad = await horde.client.get("/api/v2/stats/img/models", params={"model_state": "sometimes"})
    assert bad.status_code == 400 and bad.json()["rc"] == "ValidationError"


async def test_text_stats_are_empty_on_an_image_horde(horde: Horde) -> None:
    totals = (await horde.client.get("/api/v2/stats/text/totals")).json()
    assert totals == {period: {"requests": 0, "tokens": 0} for period in PERIODS}
    models = (await horde.client.get("/api/v2/stats/text/models")).json()
    assert models == {"day": {}, "month": {}, "total": {}}


async def test_the_maintenance_loop_writes_the_counters(horde: Horde) -> None:
    owner, requester = await horde.register("wally"), await horde.register("alice")
    await _deliver(horde, owner, requester, 1)
    assert (await _totals(horde))["total"]["images"] == 0  # counted in memory, not written yet
    # The server's own loop, with a short interval (the fixture's is an hour).
    fast = horde.settings.model_copy(
        update={"queue": horde.settings.queue.model_copy(update={"maintenance_interval_seconds": 0.05})}
    )
    own = Database(horde.settings.resolved_database_url)  # a cancelled pass must not upset the server's pool
    loop = asyncio.create_task(_maintenance_loop(own, dataclasses.replace(horde.ctx, settings=fast)))
    try:
        for _ in range(100):
            if (await _totals(horde))["total"]["images"]:
                break
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await own.dispose()
    assert (await _totals(horde))["total"] == {"images": 1, "ps": 64 * 64 * 5}
