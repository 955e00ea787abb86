"""The workers' side through HTTP: ``/generate/pop``, ``/generate/submit``, leases and clean-up."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, insert, select, text

from openhorde.domain.queue.leases import run_maintenance
from openhorde.storage.matching_queries import WorkerSide, shape_and_params, walk_model_queues
from openhorde.storage.repositories.handouts import find_statement
from openhorde.storage.tables import Job, Request, RequestModel
from tests.live_server import Account, Horde, webp_bytes

SMALL = {"width": 64, "height": 64, "steps": 5}


# -- small helpers --------------------------------------------------------------------------


async def queue(horde: Horde, account: Account, prompt: str = "a lighthouse", **overrides: Any) -> str:
    """Queue a request and return its id."""
    overrides.setdefault("params", dict(SMALL))
    response = await horde.generate(account, prompt=prompt, **overrides)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def pop_raw(horde: Horde, account: Account | None, **body: Any) -> httpx.Response:
    """A pop whose answer may be an error."""
    body.setdefault("name", "worker-1")
    body.setdefault("models", ["stable_diffusion"])
    headers = account.headers if account else {"apikey": "0000000000"}
    return await horde.client.post("/api/v2/generate/pop", json=body, headers=headers)


async def submit_raw(horde: Horde, account: Account, job_id: str, **body: Any) -> httpx.Response:
    body = {"id": job_id, "generation": "R2", "state": "ok", "seed": 1, **body}
    return await horde.client.post("/api/v2/generate/submit", json=body, headers=account.headers)


async def register_worker(horde: Horde, account: Account, name: str) -> str:
    """Create a worker with a first (empty-handed) pop and return its id."""
    assert (await horde.pop(account, name=name))["ids"] == []
    response = await horde.client.get(f"/api/v2/workers/name/{name}")
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def kudos_of(horde: Horde, account: Account) -> float:
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    assert response.status_code == 200, response.text
    return float(response.json()["kudos"])


async def earned_of(horde: Horde, account: Account) -> float:
    """A worker owner's kudos, including the part held in escrow while the owner is untrusted."""
    response = await horde.client.get("/api/v2/find_user", headers=account.headers)
    assert response.status_code == 200, response.text
    return round(float(response.json()["kudos"]) + float(response.json()["evaluating_kudos"]), 2)


async def status(horde: Horde, request_id: str) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/generate/status/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def maintain(horde: Horde, now: float) -> Any:
    async with horde.db.store() as store:
        return await run_maintenance(store, horde.ctx, now)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- pop: matching --------------------------------------------------------------------------


async def test_model_the_worker_does_not_serve_is_skipped(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, models=["Deliberate"])
    nothing = await horde.pop(owner, models=["stable_diffusion"])
    assert nothing["ids"] == [] and nothing["skipped"] == {"models": 1}
    job = await horde.pop(owner, models=["stable_diffusion", "Deliberate"])
    assert len(job["ids"]) == 1 and job["model"] == "Deliberate"


async def test_request_without_models_goes_to_any_worker(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester)
    job = await horde.pop(owner, models=["Dreamshaper"])
    assert len(job["ids"]) == 1 and job["model"] == "Dreamshaper"


async def test_max_pixels_skips_larger_requests(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, params={"width": 512, "height": 512, "steps": 5})
    nothing = await horde.pop(owner, max_pixels=256 * 256)
    assert nothing["ids"] == [] and nothing["skipped"] == {"max_pixels": 1}
    job = await horde.pop(owner, max_pixels=512 * 512)
    assert len(job["ids"]) == 1 and (job["payload"]["width"], job["payload"]["height"]) == (512, 512)


async def test_nsfw_requests_go_only_to_nsfw_workers(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, nsfw=True)
    nothing = await horde.pop(owner, nsfw=False)
    assert nothing["ids"] == [] and nothing["skipped"] == {"nsfw": 1}
    assert len((await horde.pop(owner, nsfw=True))["ids"]) == 1


async def test_censoring_requests_skip_workers_without_a_safety_model(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, "censor me", censor_nsfw=True)
    await queue(horde, requester, "no censoring")
    # The older censoring request is passed over by a worker that cannot censor.
    job = await horde.pop(owner, can_censor_nsfw=False)
    assert job["payload"]["prompt"] == "no censoring"
    nothing = await horde.pop(owner, can_censor_nsfw=False)
    assert nothing["ids"] == [] and nothing["skipped"] == {"nsfw": 1}
    job = await horde.pop(owner)
    assert job["payload"]["prompt"] == "censor me" and job["payload"]["use_nsfw_censor"] is True


async def test_img2img_is_skipped_by_workers_without_img2img(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, source_image=b64(webp_bytes()))
    nothing = await horde.pop(owner, allow_img2img=False)
    assert nothing["ids"] == [] and nothing["skipped"] == {"img2img": 1}
    job = await horde.pop(owner, allow_img2img=True)
    assert len(job["ids"]) == 1 and job["source_image"] and job["source_processing"] == "img2img"


async def test_inpainting_is_skipped_by_workers_without_painting(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    source, mask = b64(webp_bytes()), b64(webp_bytes(color=(255, 255, 255)))
    await queue(horde, requester, "paint", source_image=source, source_mask=mask, source_processing="inpainting")
    await queue(horde, requester, "plain img2img", source_image=source)
    # The older inpainting request is passed over; plain img2img is still fine without painting.
    job = await horde.pop(owner, allow_painting=False)
    assert job["payload"]["prompt"] == "plain img2img"
    nothing = await horde.pop(owner, allow_painting=False)
    assert nothing["ids"] == [] and nothing["skipped"] == {"painting": 1}
    job = await horde.pop(owner, allow_painting=True)
    assert job["source_processing"] == "inpainting" and job["source_mask"]


async def test_lora_requests_go_only_to_lora_workers(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, params={**SMALL, "loras": [{"name": "styleA"}]})
    nothing = await horde.pop(owner)
    assert nothing["ids"] == [] and nothing["skipped"] == {"lora": 1}
    job = await horde.pop(owner, allow_lora=True)
    assert [lora["name"] for lora in job["payload"]["loras"]] == ["styleA"]


async def test_post_processing_requests_skip_workers_without_it(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, params={**SMALL, "post_processing": ["GFPGAN"]})
    nothing = await horde.pop(owner, allow_post_processing=False)
    assert nothing["ids"] == [] and nothing["skipped"] == {"post-processing": 1}
    job = await horde.pop(owner, allow_post_processing=True)
    assert job["payload"]["post_processing"] == ["GFPGAN"]


async def test_post_processors_go_only_to_bridges_new_enough_for_them(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, params={**SMALL, "post_processing": ["NMKD_Siax"], "post_processing_order": "custom"})
    # The legacy AI Horde Worker gained NMKD_Siax at version 19 (the AI Horde's bridge table).
    old = await horde.pop(owner, allow_post_processing=True, bridge_agent="AI Horde Worker:18:https://x")
    assert old["ids"] == [] and old["skipped"] == {"bridge_version": 1}
    webui = await horde.pop(owner, allow_post_processing=True, bridge_agent="HordeAutoWebBridge:2:https://x")
    assert webui["ids"] == [] and webui["skipped"] == {"bridge_version": 1}
    job = await horde.pop(owner, allow_post_processing=True, bridge_agent="AI Horde Worker reGen:9.0.2:https://x")
    assert job["payload"]["post_processing"] == ["NMKD_Siax"]
    assert job["payload"]["post_processing_order"] == "custom"


async def test_a_worker_listing_its_post_processors_gets_only_requests_it_can_serve(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, params={**SMALL, "post_processing": ["GFPGAN", "strip_background"]})
    lacking = await horde.pop(owner, allow_post_processing=True, post_processors=["GFPGAN", "RealESRGAN_x4plus"])
    assert lacking["ids"] == [] and lacking["skipped"] == {"post-processing": 1}
    job = await horde.pop(owner, allow_post_processing=True, post_processors=["strip_background", "GFPGAN"])
    assert job["payload"]["post_processing"] == ["GFPGAN", "strip_background"]


async def test_trusted_workers_requests_go_only_to_trusted_owners(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, trusted_workers=True)
    nothing = await horde.pop(owner)
    assert nothing["ids"] == [] and nothing["skipped"] == {"untrusted": 1}
    await horde.set_user(owner, is_trusted=True)
    assert len((await horde.pop(owner))["ids"]) == 1


async def test_worker_whitelist_and_blacklist(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    first = await register_worker(horde, owner, "first")
    await register_worker(horde, owner, "second")

    await queue(horde, requester, "only first", workers=[first])
    nothing = await horde.pop(owner, name="second")
    assert nothing["ids"] == [] and nothing["skipped"] == {"worker_id": 1}
    assert (await horde.pop(owner, name="first"))["payload"]["prompt"] == "only first"

    await queue(horde, requester, "not first", workers=[first], worker_blacklist=True)
    nothing = await horde.pop(owner, name="first")
    assert nothing["ids"] == [] and nothing["skipped"] == {"worker_id": 1}
    assert (await horde.pop(owner, name="second"))["payload"]["prompt"] == "not first"


async def test_worker_word_blacklist_skips_matching_prompts(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, "A CASTLE at dusk")
    await queue(horde, requester, "a lighthouse")
    job = await horde.pop(owner, name="picky", blacklist=["castle"])
    assert job["payload"]["prompt"] == "a lighthouse"
    nothing = await horde.pop(owner, name="picky", blacklist=["castle"])
    assert nothing["ids"] == [] and nothing["skipped"] == {"blacklist": 1}
    assert (await horde.pop(owner, name="other"))["payload"]["prompt"] == "A CASTLE at dusk"


async def test_owner_requests_are_served_first(horde: Horde) -> None:
    stranger = await horde.register("stranger", kudos=5000)
    owner = await horde.register("owner")
    await queue(horde, stranger, "stranger's")
    await queue(horde, owner, "owner's")
    assert (await horde.pop(owner))["payload"]["prompt"] == "owner's"
    assert (await horde.pop(owner))["payload"]["prompt"] == "stranger's"


async def test_priority_usernames_are_served_first(horde: Horde) -> None:
    rich = await horde.register("rich", kudos=5000)
    friend = await horde.register("friend")
    owner = await horde.register("owner")
    await queue(horde, rich, "rich's")
    await queue(horde, friend, "friend's")
    priority = [f"{friend.username}#{friend.id}"]
    assert (await horde.pop(owner, name="kind", priority_usernames=priority))["payload"]["prompt"] == "friend's"
    assert (await horde.pop(owner, name="kind", priority_usernames=priority))["payload"]["prompt"] == "rich's"


async def test_bad_priority_username_is_400(horde: Horde) -> None:
    owner = await horde.register("owner")
    response = await pop_raw(horde, owner, priority_usernames=["no-id-here"])
    assert response.status_code == 400 and response.json()["rc"] == "InvalidPriorityUsername"


async def test_richer_requesters_first_then_older_first(horde: Horde) -> None:
    poor_a, poor_b = await horde.register("poora"), await horde.register("poorb")
    rich = await horde.register("rich", kudos=1000)
    owner = await horde.register("owner")
    await queue(horde, poor_a, "poor a")
    await queue(horde, poor_b, "poor b")
    await queue(horde, rich, "rich")
    prompts = [(await horde.pop(owner))["payload"]["prompt"] for _ in range(3)]
    assert prompts == ["rich", "poor a", "poor b"]


async def test_amount_batches_images_of_one_request(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    request_id = await queue(horde, requester, params={**SMALL, "n": 4})
    job = await horde.pop(owner, amount=3)
    assert len(job["ids"]) == len(set(job["ids"])) == 3
    assert len(job["r2_uploads"]) == 3 and len(set(job["r2_uploads"])) == 3
    assert job["id"] == job["ids"][0] and job["r2_upload"] == job["r2_uploads"][0]
    assert job["payload"]["n_iter"] == 3
    rest = await horde.pop(owner, amount=3)
    assert len(rest["ids"]) == 1 and rest["payload"]["n_iter"] == 1
    assert (await horde.pop(owner, amount=3))["ids"] == []
    for batch in (job, rest):
        for index in range(len(batch["ids"])):
            assert (await horde.upload_and_submit(owner, batch, index)).status_code == 200
    final = await status(horde, request_id)
    assert final["done"] and final["finished"] == 4 and len(final["generations"]) == 4
    assert {g["id"] for g in final["generations"]} == {*job["ids"], *rest["ids"]}


async def test_amount_is_limited_for_large_images(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, params={"width": 512, "height": 512, "steps": 5, "n": 4})
    job = await horde.pop(owner, amount=4, max_pixels=512 * 512)
    assert len(job["ids"]) == 1 and job["payload"]["n_iter"] == 1


async def test_disable_batching_hands_out_one_image(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester, params={**SMALL, "n": 3}, disable_batching=True)
    job = await horde.pop(owner, amount=3)
    assert len(job["ids"]) == 1 and len(job["r2_uploads"]) == 1 and job["payload"]["n_iter"] == 1


async def test_empty_pop_answer_shape(horde: Horde) -> None:
    owner = await horde.register("owner")
    body = (await pop_raw(horde, owner)).json()
    assert body["payload"] == {} and body["ids"] == [] and body["skipped"] == {}
    assert "id" not in body and "r2_upload" not in body and "model" not in body


async def test_anonymous_cannot_pop(horde: Horde) -> None:
    response = await pop_raw(horde, None)
    assert response.status_code == 403 and response.json()["rc"] == "AnonForbiddenWorker"


async def test_worker_name_of_another_account_is_refused(horde: Horde) -> None:
    alice, bob = await horde.register("alice"), await horde.register("bob")
    await register_worker(horde, alice, "taken")
    response = await pop_raw(horde, bob, name="taken")
    assert response.status_code == 403 and response.json()["rc"] == "WrongCredentials"


@pytest.mark.both_databases  # parallel pops race to create one worker row
async def test_concurrent_first_pops_of_a_new_worker_all_succeed(horde: Horde) -> None:
    owner, other = await horde.register("owner"), await horde.register("other")
    answers = await asyncio.gather(*(pop_raw(horde, owner, name="fresh", threads=4) for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    listed = (await horde.client.get("/api/v2/workers", params={"name": "fresh"})).json()
    assert len(listed) == 1 and listed[0]["threads"] == 4 and listed[0]["models"] == ["stable_diffusion"]
    racers = await asyncio.gather(
        *(pop_raw(horde, other, name="fresh-2") for _ in range(3)),
        *(pop_raw(horde, owner, name="fresh-2") for _ in range(3)),
    )
    codes = sorted(a.status_code for a in racers)
    assert codes == [200, 200, 200, 403, 403, 403]
    assert all(a.json()["rc"] == "WrongCredentials" for a in racers if a.status_code == 403)


async def test_unknown_models_only_is_400(horde: Horde) -> None:
    owner = await horde.register("owner")
    response = await pop_raw(horde, owner, models=["no such model"])
    assert response.status_code == 400 and response.json()["rc"] == "UnexpectedModelName"
    mixed = await pop_raw(horde, owner, models=["no such model", "stable_diffusion"])
    assert mixed.status_code == 200, mixed.text


async def test_worker_in_maintenance_serves_only_its_owner(horde: Horde) -> None:
    stranger, owner = await horde.register("stranger"), await horde.register("owner")
    worker_id = await register_worker(horde, owner, "fixing")
    changed = await horde.client.put(f"/api/v2/workers/{worker_id}", json={"maintenance": True}, headers=owner.headers)
    assert changed.status_code == 200, changed.text

    await queue(horde, stranger, "stranger's")
    refused = await pop_raw(horde, owner, name="fixing")
    assert refused.status_code == 403 and refused.json()["rc"] == "WorkerMaintenance"
    await queue(horde, owner, "owner's")
    assert (await horde.pop(owner, name="fixing"))["payload"]["prompt"] == "owner's"
    refused = await pop_raw(horde, owner, name="fixing")
    assert refused.status_code == 403 and refused.json()["rc"] == "WorkerMaintenance"

    back = await horde.client.put(f"/api/v2/workers/{worker_id}", json={"maintenance": False}, headers=owner.headers)
    assert back.status_code == 200
    assert (await horde.pop(owner, name="fixing"))["payload"]["prompt"] == "stranger's"


# -- submit ---------------------------------------------------------------------------------


@pytest.mark.both_databases  # PostgreSQL claims and settles at once, then claims alone to tell why it could not
async def test_duplicate_submit_is_refused_and_paid_once(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester)
    job = await horde.pop(owner)
    first = await horde.upload_and_submit(owner, job)
    assert first.status_code == 200, first.text
    reward = first.json()["reward"]
    assert reward > 0 and await earned_of(horde, owner) == reward
    again = await submit_raw(horde, owner, job["ids"][0])
    assert again.status_code == 400 and again.json()["rc"] == "DuplicateGen"
    assert await earned_of(horde, owner) == reward


@pytest.mark.both_databases
async def test_submit_for_another_accounts_job_is_403(horde: Horde) -> None:
    requester, owner, thief = [await horde.register(n) for n in ("req", "owner", "thief")]
    await queue(horde, requester)
    job = await horde.pop(owner)
    await horde.client.put(job["r2_uploads"][0], content=webp_bytes())
    stolen = await submit_raw(horde, thief, job["ids"][0])
    assert stolen.status_code == 403 and stolen.json()["rc"] == "WrongCredentials"
    assert await kudos_of(horde, thief) == 0
    assert (await submit_raw(horde, owner, job["ids"][0])).status_code == 200


@pytest.mark.both_databases
async def test_submit_unknown_job_is_404(horde: Horde) -> None:
    owner = await horde.register("owner")
    response = await submit_raw(horde, owner, str(uuid.uuid4()))
    assert response.status_code == 404 and response.json()["rc"] == "InvalidJobID"


@pytest.mark.both_databases
async def test_submit_r2_without_upload_is_400(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    request_id = await queue(horde, requester)
    job = await horde.pop(owner)
    response = await submit_raw(horde, owner, job["ids"][0])
    assert response.status_code == 400 and response.json()["rc"] == "ImageValidationFailed"
    assert (await horde.check(request_id))["processing"] == 1
    assert (await horde.upload_and_submit(owner, job)).status_code == 200


async def test_base64_generation_is_accepted_and_served(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    request_id = await queue(horde, requester)
    job = await horde.pop(owner)
    sent = webp_bytes((64, 64), (10, 220, 40))
    response = await submit_raw(horde, owner, job["ids"][0], generation=b64(sent), seed=42)
    assert response.status_code == 200 and response.json()["reward"] > 0
    [generation] = (await status(horde, request_id))["generations"]
    assert generation["id"] == job["ids"][0] and generation["seed"] == "42"
    served = await horde.client.get(generation["img"])
    assert served.status_code == 200
    image = Image.open(io.BytesIO(served.content))
    assert image.format == "WEBP" and image.size == (64, 64)
    assert image.convert("RGB").getpixel((10, 10)) == (10, 220, 40)


async def test_submit_bad_base64_is_400(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester)
    job = await horde.pop(owner)
    response = await submit_raw(horde, owner, job["ids"][0], generation=b64(b"not an image at all"))
    assert response.status_code == 400


async def test_upload_url_refuses_non_images_and_tampered_signatures(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    await queue(horde, requester)
    url = (await horde.pop(owner))["r2_uploads"][0]
    junk = await horde.client.put(url, content=b"this is not an image")
    assert junk.status_code == 400
    base, signature = url.rsplit("signature=", 1)
    tampered = base + "signature=" + ("0" if signature[0] != "0" else "1") + signature[1:]
    forged = await horde.client.put(tampered, content=webp_bytes())
    assert forged.status_code == 403 and forged.json()["rc"] == "InvalidUploadSignature"
    other_key = url.replace("/results/", "/results/x")
    assert (await horde.client.put(other_key, content=webp_bytes())).status_code == 403
    for malformed in (base.rstrip("&?"), url.replace("expires=", "expires=soon"), base + "signature=short"):
        refused = await horde.client.put(malformed, content=webp_bytes())  # the query's own checks, as FastAPI's
        assert refused.status_code == 400 and refused.json()["rc"] == "ValidationError", malformed
    assert (await horde.client.put(url, content=webp_bytes())).status_code == 200


async def test_faulted_submit_requeues_the_image(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    request_id = await queue(horde, requester, "retry me")
    job = await horde.pop(owner, name="flaky")
    faulted = await submit_raw(horde, owner, job["ids"][0], generation=None, state="faulted")
    assert faulted.status_code == 200 and faulted.json()["reward"] == 0
    state = await horde.check(request_id)
    assert state["restarted"] == 1 and state["waiting"] == 1 and state["processing"] == 0 and not state["done"]
    assert await kudos_of(horde, owner) == 0

    retry = await horde.pop(owner, name="solid")
    assert retry["payload"]["prompt"] == "retry me" and retry["ids"] != job["ids"]
    assert (await horde.upload_and_submit(owner, retry)).status_code == 200
    final = await status(horde, request_id)
    assert final["done"] and not final["faulted"] and final["finished"] == 1 and final["restarted"] == 1
    assert final["fault_reason"] is None
    assert [g["id"] for g in final["generations"]] == retry["ids"]


async def test_three_faults_fault_the_request(horde: Horde) -> None:
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    request_id = await queue(horde, requester)
    for attempt in range(3):
        job = await horde.pop(owner)
        assert len(job["ids"]) == 1, f"attempt {attempt}: {job}"
        reason = [{"type": "information", "value": "see_ref", "ref": f"out of memory #{attempt}"}]
        response = await submit_raw(horde, owner, job["ids"][0], state="faulted", gen_metadata=reason)
        assert response.status_code == 200 and response.json()["reward"] == 0
    state = await horde.check(request_id)
    assert state["faulted"] and state["done"] and state["restarted"] == 3 and state["waiting"] == 0
    assert state["fault_reason"].endswith("the last: out of memory #2")
    full = await horde.client.get(f"/api/v2/generate/status/{request_id}")
    assert full.json()["fault_reason"] == state["fault_reason"]
    assert (await horde.pop(owner))["ids"] == []
    assert await kudos_of(horde, requester) == 100 and await kudos_of(horde, owner) == 0


async def model_queue_rows(horde: Horde) -> dict[str, tuple[float, bool]]:
    """``request_id → (queue_rank, waiting)`` of every row of the per-model queues (``request_models``)."""
    async with horde.db.unit_of_work() as session:
        rows = await session.execute(select(RequestModel.request_id, RequestModel.queue_rank, RequestModel.waiting))
        return {str(request_id): (float(rank), bool(waiting)) for request_id, rank, waiting in rows}


async def test_requests_leave_the_model_queues_when_they_end(horde: Horde) -> None:
    """Done, cancelled, faulted and timed-out requests leave the per-model queues the pop walks; a queued one
    stays with its own rank, out of the walk while all its images are being generated and back in when one
    comes back."""
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    listed = {"models": ["stable_diffusion"]}
    done, cancelled, faulted, busy, timed_out, waiting = [
        await queue(horde, requester, f"request {i}", **listed) for i in range(6)
    ]
    assert set(await model_queue_rows(horde)) == {done, cancelled, faulted, timed_out, busy, waiting}

    assert (await horde.client.delete(f"/api/v2/generate/status/{cancelled}")).status_code == 200
    job = await horde.pop(owner)
    assert job["id"] and job["payload"]["prompt"] == "request 0"
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    for _ in range(3):
        job = await horde.pop(owner)
        assert job["payload"]["prompt"] == "request 2", job
        await submit_raw(horde, owner, job["ids"][0], state="faulted")
    assert (await horde.check(faulted))["faulted"]
    busy_job = await horde.pop(owner)
    assert busy_job["payload"]["prompt"] == "request 3"
    async with horde.db.unit_of_work() as session:  # "request 4" has waited past the queue time-out
        await session.execute(text("UPDATE requests SET last_activity_at = 0 WHERE id = :id"), {"id": timed_out})
    assert (await maintain(horde, time.time())).timed_out_requests == 1
    assert (await horde.check(timed_out))["faulted"]

    rows = await model_queue_rows(horde)
    assert set(rows) == {busy, waiting}
    async with horde.db.unit_of_work() as session:
        ranks = dict((await session.execute(select(Request.id, Request.queue_rank).where(Request.id.in_(rows)))).all())
    assert rows == {busy: (float(ranks[busy]), False), waiting: (float(ranks[waiting]), True)}

    await submit_raw(horde, owner, busy_job["ids"][0], state="faulted")  # its image waits again
    assert (await model_queue_rows(horde))[busy] == (float(ranks[busy]), True)
    assert (await horde.pop(owner))["payload"]["prompt"] == "request 3"
    assert (await horde.pop(owner))["payload"]["prompt"] == "request 5"


async def test_censored_image_is_free_for_the_requester_but_pays_the_worker(horde: Horde) -> None:
    requester, owner = await horde.register("req", kudos=100), await horde.register("owner")
    request_id = await queue(horde, requester, params={**SMALL, "n": 2})
    job = await horde.pop(owner, amount=2)
    assert len(job["ids"]) == 2
    censored = await horde.upload_and_submit(owner, job, 0, state="censored")
    assert censored.status_code == 200 and censored.json()["reward"] > 0
    assert await kudos_of(horde, requester) == 100
    assert (await horde.check(request_id))["kudos"] == 0
    ok = await horde.upload_and_submit(owner, job, 1)
    assert ok.status_code == 200

    final = await status(horde, request_id)
    by_id = {g["id"]: g for g in final["generations"]}
    assert by_id[job["ids"][0]]["censored"] and by_id[job["ids"][0]]["state"] == "censored"
    assert not by_id[job["ids"][1]]["censored"] and by_id[job["ids"][1]]["state"] == "ok"
    charged = round(100 - await kudos_of(horde, requester), 2)
    assert charged > 0 and final["kudos"] == round(charged)  # whole kudos, as the reference sends them
    assert await earned_of(horde, owner) == round(censored.json()["reward"] + ok.json()["reward"], 2)


# -- leases and retention -------------------------------------------------------------------


async def test_expired_lease_goes_to_another_worker(horde: Horde) -> None:
    requester, owner, slowpoke = [await horde.register(n) for n in ("req", "owner", "slowpoke")]
    request_id = await queue(horde, requester, params={**SMALL, "n": 2})
    late = await horde.pop(slowpoke, name="slow", amount=2)
    assert len(late["ids"]) == 2
    report = await maintain(horde, time.time() + 10_000)
    assert report.expired_jobs == 2
    state = await horde.check(request_id)
    assert state["waiting"] == 2 and state["processing"] == 0 and not state["done"]

    fresh = await horde.pop(owner, name="fast", amount=2)
    assert len(fresh["ids"]) == 2 and not set(fresh["ids"]) & set(late["ids"])
    for index in range(2):
        assert (await horde.upload_and_submit(owner, fresh, index)).status_code == 200

    too_late = await horde.client.put(late["r2_uploads"][0], content=webp_bytes())
    assert too_late.status_code == 403 and too_late.json()["rc"] == "UploadClosed"
    aborted = await submit_raw(horde, slowpoke, late["ids"][0])
    assert aborted.status_code == 400 and aborted.json()["rc"] == "AbortedGen"
    gave_up = await submit_raw(horde, slowpoke, late["ids"][1], state="faulted")
    assert gave_up.status_code == 200 and gave_up.json()["reward"] == 0
    assert await kudos_of(horde, slowpoke) == 0

    final = await status(horde, request_id)
    assert final["done"] and not final["faulted"] and final["finished"] == 2
    assert sorted(g["id"] for g in final["generations"]) == sorted(fresh["ids"])
    async with horde.db.unit_of_work() as session:
        done_jobs = await session.scalar(
            select(func.count()).select_from(Job).where(Job.request_id == request_id, Job.state == "done")
        )
    assert done_jobs == 2


async def test_lease_is_not_expired_before_its_deadline(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    request_id = await queue(horde, requester)
    job = await horde.pop(owner)
    assert job["ttl"] >= 150
    assert (await maintain(horde, time.time() + job["ttl"] - 30)).expired_jobs == 0
    assert (await horde.check(request_id))["processing"] == 1
    assert (await horde.upload_and_submit(owner, job)).status_code == 200


async def test_finished_request_is_removed_after_retention(horde: Horde) -> None:
    requester, owner = await horde.register("req"), await horde.register("owner")
    request_id = await queue(horde, requester)
    job = await horde.pop(owner)
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    image_url = (await status(horde, request_id))["generations"][0]["img"]
    assert (await horde.client.get(image_url)).status_code == 200

    retention = horde.settings.blobs.result_retention_seconds
    assert (await maintain(horde, time.time() + retention - 60)).removed_requests == 0
    assert (await horde.client.get(f"/api/v2/generate/status/{request_id}")).status_code == 200
    assert (await maintain(horde, time.time() + retention + 10)).removed_requests == 1
    gone = await horde.client.get(f"/api/v2/generate/status/{request_id}")
    assert gone.status_code == 404 and gone.json()["rc"] == "RequestNotFound"
    assert (await horde.client.get(image_url)).status_code == 404


# -- PostgreSQL only ------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_pop_that_found_its_request_held_by_another_pop_asks_again(horde: Horde, backend: str) -> None:
    """A pop that found nothing only because another transaction held the request (``SKIP LOCKED``) is not
    remembered as empty: once the lock is gone the same worker gets the request, with no new request queued."""
    if backend != "postgres":
        pytest.skip("row locking (FOR UPDATE SKIP LOCKED) is a PostgreSQL matter")
    requester, owner = await horde.register("req"), await horde.register("owner")
    request_id = await queue(horde, requester, "held for a moment")
    async with horde.db.unit_of_work() as holder:
        await holder.execute(text("SELECT id FROM requests WHERE id = :id FOR UPDATE"), {"id": request_id})
        assert (await horde.pop(owner, name="patient"))["ids"] == []
    assert len((await horde.pop(owner, name="patient"))["ids"]) == 1


@pytest.mark.postgres
async def test_concurrent_pops_never_hand_out_an_image_twice(horde: Horde, backend: str) -> None:
    if backend != "postgres":
        pytest.skip("row locking (FOR UPDATE SKIP LOCKED) is a PostgreSQL matter")
    requesters = [await horde.register(f"req{i}") for i in range(3)]
    owners = [await horde.register(f"owner{i}") for i in range(5)]
    workers = [(owners[i % 5], f"w{i}") for i in range(10)]
    for owner, name in workers:
        await register_worker(horde, owner, name)
    sizes: dict[str, int] = {}
    for i in range(24):
        sizes[await queue(horde, requesters[i % 3], f"prompt {i}")] = 1
    for i in range(3):
        sizes[await queue(horde, requesters[i], f"pair {i}", params={**SMALL, "n": 2})] = 2
    total = sum(sizes.values())

    pops = [horde.pop(owner, name=name) for _ in range(6) for owner, name in workers]
    answers = await asyncio.gather(*pops)
    job_ids = [job_id for answer in answers for job_id in answer["ids"]]
    assert len(job_ids) == len(set(job_ids)) == total
    assert sum(1 for a in answers if a["ids"]) == total

    async with horde.db.unit_of_work() as session:
        rows = (await session.execute(select(Job.id, Job.request_id, Job.seed))).all()
        requests = {r.id: r for r in await session.scalars(select(Request))}
    assert {row.id for row in rows} == set(job_ids)
    per_request = Counter(row.request_id for row in rows)
    assert per_request == Counter(sizes)
    for request_id, n in sizes.items():
        request = requests[request_id]
        assert (request.n_waiting, request.n_processing) == (0, n)
        assert len({row.seed for row in rows if row.request_id == request_id}) == n


async def _bulk_queue(horde: Horde, analyze: bool = True) -> tuple[Account, list[dict[str, Any]], dict[str, str]]:
    """5,000 requests of 20 users, three in four queued, two in three naming a model (of two), analysed."""
    requesters = [await horde.register(f"bulk{i}") for i in range(20)]
    requester = requesters[-1]
    now = time.time()
    rows: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "user_id": requesters[i % len(requesters)].id,
            "state": "queued" if i % 4 else "done",
            "created_at": now - i,
            "last_activity_at": now - i,
            "queue_rank": (i % 7) * 10.0 - 5 * (now - i),
            "prompt": f"bulk {i}",
            "params": {"width": 512, "height": 512, "steps": 20, "sampler_name": "k_euler_a"},
            "n_total": 1,
            "n_waiting": 1 if i % 4 else 0,
            "width": 512,
            "height": 512,
            "pixels": 512 * 512,
            "accurate_steps": 20,
            "things": 512 * 512 * 20,
            "has_model_list": i % 3 != 0,
            "price_cents": 1000,
            "charge_cents": 1000,
            "seed": i,
        }
        for i in range(5000)
    ]
    models = {
        row["id"]: ("stable_diffusion", "other_model")[i % 2] for i, row in enumerate(rows) if row["has_model_list"]
    }
    async with horde.db.unit_of_work() as session:
        await session.execute(insert(Request), rows)
        await session.execute(
            insert(RequestModel),
            [
                {"request_id": row["id"], "model": models[row["id"]], "queue_rank": row["queue_rank"]}
                for row in rows
                if row["id"] in models and row["state"] == "queued"
            ],
        )
        # PostgreSQL counts the changes for its statistics views at most once a second: count these now.
        await session.execute(text("SELECT pg_stat_force_next_flush()"))
    if analyze:
        async with horde.db.unit_of_work() as session:
            await session.execute(text("ANALYZE requests"))
            await session.execute(text("ANALYZE request_models"))
    return requester, rows, models


@pytest.mark.postgres
async def test_maintenance_refreshes_the_statistics_of_a_queue_that_grew(horde: Horde, backend: str) -> None:
    """A queue grown by thousands of rows since its last ANALYZE is analysed by the next maintenance pass (its
    old statistics made the pop's plan join the per-model queue to the whole queue row by row); one that did not
    change is left alone."""
    if backend != "postgres":
        pytest.skip("planner statistics are PostgreSQL's")

    async def analyses() -> dict[str, int]:
        async with horde.db.unit_of_work() as session:
            await session.execute(text("SELECT pg_stat_clear_snapshot()"))
            rows = await session.execute(
                text("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(:names)"),
                {"names": ["requests", "request_models"]},
            )
            return {str(name): int(count) for name, count in rows}

    await _bulk_queue(horde, analyze=False)
    before = await analyses()
    async with horde.db.store() as store:
        report = await run_maintenance(store, horde.ctx, time.time())
    assert report.analyzed_tables == ("requests", "request_models")
    after = await analyses()
    assert all(after[name] == before[name] + 1 for name in before), (before, after)
    async with horde.db.store() as store:
        soon = await run_maintenance(store, horde.ctx, time.time())
    assert soon.analyzed_tables == ()  # nothing changed since, and at most one refresh a minute


def _bulk_worker(requester: Account) -> WorkerSide:
    """A worker of another owner (who has nothing queued) serving one of the queued models and one absent one."""
    return WorkerSide(
        worker_id=str(uuid.uuid4()),
        owner_id=requester.id + 1000,
        max_pixels=512 * 512,
        nsfw=False,
        allow_img2img=True,
        allow_painting=True,
        allow_post_processing=True,
        allow_controlnet=False,
        allow_lora=False,
        can_censor_nsfw=True,
        owner_trusted=False,
        fast=True,
        limit_max_steps=False,
        require_upfront_kudos=False,
        maintenance=False,
        models=["stable_diffusion", "absent_model"],
        blacklist=["castle"],
    )


@pytest.mark.postgres
async def test_pop_query_walks_the_per_model_queues(horde: Horde, backend: str) -> None:
    """A pop reads one index per model it serves plus the any-model index, each in rank order, and picks the best."""
    if backend != "postgres":
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    requester, rows, models = await _bulk_queue(horde)
    side = _bulk_worker(requester)
    query = select(Request).where(Request.id == walk_model_queues(side, lock=True))
    async with horde.db.unit_of_work() as session:
        sql = str(query.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(row[0] for row in await session.execute(text("EXPLAIN " + sql)))
        picked = await session.scalar(query)
    assert "ix_requests_queue_any_model" in plan and "ix_request_models_queue" in plan, plan
    servable = [
        r for r in rows if r["state"] == "queued" and models.get(r["id"], "stable_diffusion") == "stable_diffusion"
    ]
    assert picked is not None and picked.state == "queued" and picked.n_waiting > 0
    assert picked.queue_rank == max(r["queue_rank"] for r in servable)
    assert picked.queue_rank < max(r["queue_rank"] for r in rows if r["state"] == "queued"), "not a best-of-all pick"


@pytest.mark.postgres
async def test_the_pop_keeps_its_indexes_under_a_generic_plan(horde: Horde, backend: str) -> None:
    """After five runs PostgreSQL may keep a prepared statement's generic plan, made without its values: the pop's
    look for the owner's own requests must still read the owner's index, not walk the whole queue (it did: 67 ms
    per pop at 100,000 queued)."""
    if backend != "postgres":
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    requester, _rows, _models = await _bulk_queue(horde)
    shape, params = shape_and_params(_bulk_worker(requester))
    statement = find_statement(shape, lock=True)
    async with horde.db.unit_of_work() as session:
        compiled = statement.compile(dialect=session.get_bind().dialect)
        values = compiled.construct_params(params)
        arguments = [values[name] for name in compiled.positiontup or ()]
        await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        await session.execute(text(f"PREPARE pick AS {compiled}"))
        literals = ", ".join(_sql_literal(value) for value in arguments)
        plan = "\n".join(row[0] for row in await session.execute(text(f"EXPLAIN EXECUTE pick({literals})")))
        await session.execute(text("DEALLOCATE pick"))
    assert "$" in plan, "not a generic plan"
    assert "ix_requests_user_queued" in plan and "ix_request_models_queue" in plan, plan
    assert "Index Scan using ix_requests_queue on" not in plan, plan


def _sql_literal(value: Any) -> str:
    if isinstance(value, list):
        return "ARRAY[" + ",".join(str(int(v)) for v in value) + "]::integer[]"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)
