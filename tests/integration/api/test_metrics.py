"""``GET /metrics``: Prometheus text that parses, with values that follow a scripted job."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from openhorde.api.app import _maintenance_loop
from openhorde.storage.db import Database
from openhorde.storage.tables import Job
from tests.live_server import Horde

SMALL = {"width": 64, "height": 64, "steps": 5}


async def scrape(horde: Horde) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await horde.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Any, after: Any, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_metrics_follow_a_scripted_job(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    before = await scrape(horde)
    assert value(before, "openhorde_workers_online") == 0
    response = await horde.generate(requester, params={**SMALL, "n": 2}, models=["stable_diffusion"])
    assert response.status_code == 202
    await horde.generate(requester, params=SMALL)  # names no model: counted as "any"
    queued = await scrape(horde)
    assert value(queued, "openhorde_queue_depth", model="stable_diffusion") == 2
    assert value(queued, "openhorde_queue_depth", model="any") == 1

    job = await horde.pop(owner, disable_batching=True)
    other = await horde.pop(owner)
    assert len(job["ids"]) == 1 and len(other["ids"]) == 1
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    faulted = {"id": other["id"], "state": "faulted", "seed": 1, "generation": "faulted"}
    assert (await horde.client.post("/api/v2/generate/submit", json=faulted, headers=owner.headers)).status_code == 200
    while (await horde.pop(owner))["ids"]:
        pass  # drain; the last pop is empty

    after = await scrape(horde)
    assert (
        delta(before, after, "openhorde_pops_total", outcome="job") == 4
    )  # 3 images, one handed out again after its fault
    assert delta(before, after, "openhorde_pops_total", outcome="empty") == 1
    assert delta(before, after, "openhorde_jobs_completed_total") == 1
    assert delta(before, after, "openhorde_jobs_faulted_total", reason="worker") == 1
    assert value(after, "openhorde_workers_online") == 1
    assert value(after, "openhorde_jobs_processing") == 2  # the drained pops' jobs are still out
    pop_route = {"method": "POST", "route": "/api/v2/generate/pop"}
    assert delta(before, after, "openhorde_http_request_duration_seconds_count", **pop_route) == 5
    assert delta(before, after, "openhorde_http_requests_total", status="200", **pop_route) == 5
    assert value(after, "openhorde_http_request_duration_seconds_bucket", le="+Inf", **pop_route) >= 5


async def test_expired_leases_count_as_faulted_by_the_maintenance_loop(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    assert (await horde.generate(requester, params=SMALL)).status_code == 202
    assert (await horde.pop(owner))["ids"]
    before = await scrape(horde)
    async with horde.db.unit_of_work() as session:
        await session.execute(update(Job).values(deadline_at=0))
    # The server's own loop, with a short interval (the fixture's is an hour).
    fast = horde.settings.model_copy(
        update={"queue": horde.settings.queue.model_copy(update={"maintenance_interval_seconds": 0.05})}
    )
    own = Database(horde.settings.resolved_database_url)  # a cancelled pass must not upset the server's pool
    loop = asyncio.create_task(_maintenance_loop(own, dataclasses.replace(horde.ctx, settings=fast)))
    try:
        for _ in range(100):
            after = await scrape(horde)
            if delta(before, after, "openhorde_jobs_faulted_total", reason="lease_expired"):
                break
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await own.dispose()
    after = await scrape(horde)
    assert delta(before, after, "openhorde_jobs_faulted_total", reason="lease_expired") == 1
    assert delta(before, after, "openhorde_maintenance_passes_total", outcome="ran") >= 1
    assert value(after, "openhorde_queue_depth", model="any") == 1
    assert value(after, "openhorde_jobs_processing") == 0


@pytest.mark.parametrize("horde_settings", [{"metrics_enabled": False}])
async def test_metrics_can_be_turned_off(horde: Horde) -> None:
    assert (await horde.client.get("/metrics")).status_code == 404
