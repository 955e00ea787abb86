"""``"gallery": true`` requests and ``/gallery`` through HTTP: kept images outlive their request."""

from __future__ import annotations

import time
from typing import Any

from openhorde.domain.queue.leases import MaintenanceReport, run_maintenance
from tests.live_server import Account, Horde, webp_bytes

SMALL = {"width": 64, "height": 128, "steps": 4, "sampler_name": "k_euler", "cfg_scale": 6, "seed": "77"}


async def _finish_one(horde: Horde, requester: Account, worker_owner: Account, **body: Any) -> str:
    """Queue a one-image request and deliver it as a worker; returns the request id."""
    response = await horde.generate(requester, prompt="a red fox###blurry", params=SMALL, **body)
    assert response.status_code == 202, response.text
    job = await horde.pop(worker_owner, name="gallery-worker")
    assert job["ids"], job
    submitted = await horde.upload_and_submit(worker_owner, job, seed=77)
    assert submitted.status_code == 200, submitted.text
    return str(response.json()["id"])


async def _gallery(horde: Horde, account: Account, page: int = 1) -> dict[str, Any]:
    response = await horde.client.get("/api/v2/gallery", params={"page": page}, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _maintain(horde: Horde, now: float) -> MaintenanceReport:
    async with horde.db.store() as store:
        return await run_maintenance(store, horde.ctx, now)


async def test_a_gallery_request_keeps_its_image_with_its_settings(horde: Horde) -> None:
    requester, owner = await horde.register("artist"), await horde.register("owner")
    request_id = await _finish_one(horde, requester, owner, gallery=True)

    page = await _gallery(horde, requester)
    assert (page["page"], page["pages"], page["total"]) == (1, 1, 1)
    (image,) = page["images"]
    assert image["request_id"] == request_id
    assert image["prompt"] == "a red fox###blurry"
    assert image["seed"] == 77 and image["model"] == "stable_diffusion"
    assert image["worker_name"] == "gallery-worker" and image["source_processing"] == "txt2img"
    assert (image["width"], image["height"]) == (64, 128)
    assert image["params"]["steps"] == 4 and image["params"]["sampler_name"] == "k_euler"
    assert image["params"]["cfg_scale"] == 6 and image["censored"] is False
    picture = await horde.client.get(image["url"])
    assert picture.status_code == 200 and picture.content == webp_bytes()


async def test_only_gallery_requests_of_registered_users_are_kept(horde: Horde) -> None:
    requester, owner = await horde.register("artist"), await horde.register("owner")
    anonymous = Account(id=0, username="Anonymous", apikey="0000000000")
    await _finish_one(horde, requester, owner)
    await _finish_one(horde, anonymous, owner, gallery=True)

    assert (await _gallery(horde, requester))["total"] == 0
    refused = await horde.client.get("/api/v2/gallery", headers=anonymous.headers)
    assert refused.status_code == 403 and refused.json()["rc"] == "AnonForbidden"


async def test_censored_images_are_not_kept(horde: Horde) -> None:
    requester, owner = await horde.register("artist"), await horde.register("owner")
    await horde.generate(requester, params=SMALL, gallery=True)
    job = await horde.pop(owner)
    assert (await horde.upload_and_submit(owner, job, state="censored")).status_code == 200

    assert (await _gallery(horde, requester))["images"] == []


async def test_kept_images_outlive_the_request_and_others_are_removed(horde: Horde) -> None:
    requester, owner = await horde.register("artist"), await horde.register("owner")
    kept_id = await _finish_one(horde, requester, owner, gallery=True)
    dropped_id = await _finish_one(horde, requester, owner)
    dropped_url = (await horde.client.get(f"/api/v2/generate/status/{dropped_id}")).json()["generations"][0]["img"]

    report = await _maintain(horde, time.time() + horde.settings.blobs.result_retention_seconds + 60)

    assert report.removed_requests == 2
    assert (await horde.client.get(f"/api/v2/generate/status/{kept_id}")).status_code == 404
    assert (await horde.client.get(dropped_url)).status_code == 404
    (image,) = (await _gallery(horde, requester))["images"]
    assert (await horde.client.get(image["url"])).content == webp_bytes()


async def test_deleting_a_kept_image_removes_it_and_its_picture(horde: Horde) -> None:
    requester, owner = await horde.register("artist"), await horde.register("owner")
    other = await horde.register("stranger")
    await _finish_one(horde, requester, owner, gallery=True)
    await _maintain(horde, time.time() + horde.settings.blobs.result_retention_seconds + 60)
    (image,) = (await _gallery(horde, requester))["images"]

    not_theirs = await horde.client.delete(f"/api/v2/gallery/{image['id']}", headers=other.headers)
    assert not_theirs.status_code == 404 and not_theirs.json()["rc"] == "GalleryImageNotFound"
    deleted = await horde.client.delete(f"/api/v2/gallery/{image['id']}", headers=requester.headers)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": True}

    assert (await _gallery(horde, requester))["total"] == 0
    assert (await horde.client.get(image["url"])).status_code == 404
    again = await horde.client.delete(f"/api/v2/gallery/{image['id']}", headers=requester.headers)
    assert again.status_code == 404


async def test_deleting_while_the_request_lives_leaves_the_request_image(horde: Horde) -> None:
    requester, owner = await horde.register("artist"), await horde.register("owner")
    request_id = await _finish_one(horde, requester, owner, gallery=True)
    (image,) = (await _gallery(horde, requester))["images"]

    assert (await horde.client.delete(f"/api/v2/gallery/{image['id']}", headers=requester.headers)).status_code == 200

    delivered = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()["generations"][0]["img"]
    assert (await horde.client.get(delivered)).content == webp_bytes()


async def test_gallery_is_paged_newest_first(horde: Horde) -> None:
    requester, owner = await horde.register("artist"), await horde.register("owner")
    first = await _finish_one(horde, requester, owner, gallery=True)
    second = await _finish_one(horde, requester, owner, gallery=True)

    page = await _gallery(horde, requester)
    assert [image["request_id"] for image in page["images"]] == [second, first]
    beyond = await _gallery(horde, requester, page=2)
    assert beyond["images"] == [] and beyond["total"] == 2 and beyond["pages"] == 1
