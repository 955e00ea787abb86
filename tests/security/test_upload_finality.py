"""A delivered image is final: its upload URL works only while the job is being generated.

After the submit, or after the job faulted or its lease ran out, a PUT to the (still signed) upload URL is
refused, and the image behind the status URL and the gallery copy stay byte for byte what was delivered.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from openhorde.domain.queue.leases import run_maintenance
from tests.live_server import Horde, webp_bytes

RED, BLUE = webp_bytes(color=(200, 0, 0)), webp_bytes(color=(0, 0, 200))


async def _image(horde: Horde, url: str) -> bytes:
    answer = await horde.client.get(url)
    assert answer.status_code == 200, answer.text
    return answer.content


def _closed(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.json()["rc"] == "UploadClosed"


async def test_a_put_after_the_submit_changes_nothing(horde: Horde) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    request_id = (await horde.generate(requester, gallery=True)).json()["id"]
    job = await horde.pop(owner)
    upload = job["r2_upload"]
    assert (await horde.client.put(upload, content=RED)).status_code == 200
    submit = {"id": job["id"], "generation": "R2", "state": "ok", "seed": 1}
    assert (await horde.client.post("/api/v2/generate/submit", json=submit, headers=owner.headers)).status_code == 200

    _closed(await horde.client.put(upload, content=BLUE))

    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert await _image(horde, status["generations"][0]["img"]) == RED
    gallery = (await horde.client.get("/api/v2/gallery", headers=requester.headers)).json()
    assert await _image(horde, gallery["images"][0]["url"]) == RED


async def test_a_put_after_a_fault_or_an_expired_lease_is_refused(horde: Horde) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    await horde.generate(requester, params={"width": 64, "height": 64, "steps": 5, "n": 2})
    faulted = await horde.pop(owner)
    fault = {"id": faulted["id"], "state": "faulted", "seed": 1}
    assert (await horde.client.post("/api/v2/generate/submit", json=fault, headers=owner.headers)).status_code == 200
    _closed(await horde.client.put(faulted["r2_upload"], content=BLUE))

    expired = await horde.pop(owner)
    async with horde.db.store() as store:
        report = await run_maintenance(store, horde.ctx, time.time() + 3600)
    assert report.expired_jobs == 1
    _closed(await horde.client.put(expired["r2_upload"], content=BLUE))


@pytest.mark.both_databases  # parallel submits race for one job
async def test_racing_submits_deliver_the_image_of_the_one_that_won(horde: Horde) -> None:
    import asyncio

    requester, owner = await horde.register("requester"), await horde.register("owner")
    request_id = (await horde.generate(requester)).json()["id"]
    job = await horde.pop(owner)
    assert (await horde.client.put(job["r2_upload"], content=RED)).status_code == 200
    body: dict[str, Any] = {"id": job["id"], "generation": "R2", "state": "ok", "seed": 1}
    answers = await asyncio.gather(
        *(horde.client.post("/api/v2/generate/submit", json=body, headers=owner.headers) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400, 400]
    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert len(status["generations"]) == 1
    assert await _image(horde, status["generations"][0]["img"]) == RED


@pytest.mark.both_databases  # PostgreSQL links the upload into place before its one-statement claim
async def test_a_second_submit_does_not_deliver_what_a_racing_put_wrote_after_the_first(horde: Horde) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    request_id = (await horde.generate(requester)).json()["id"]
    job = await horde.pop(owner)
    assert (await horde.client.put(job["r2_upload"], content=RED)).status_code == 200
    body: dict[str, Any] = {"id": job["id"], "generation": "R2", "state": "ok", "seed": 1}
    assert (await horde.client.post("/api/v2/generate/submit", json=body, headers=owner.headers)).status_code == 200
    # A PUT that passed its check while the job was processing, and wrote after the submit.
    await horde.ctx.blobs.put(f"results/{job['id']}.webp", BLUE)

    again = await horde.client.post("/api/v2/generate/submit", json=body, headers=owner.headers)
    assert again.status_code == 400 and again.json()["rc"] == "DuplicateGen"
    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert await _image(horde, status["generations"][0]["img"]) == RED
