"""Alchemy through HTTP: ``/interrogate/async``, ``/status``, ``/pop``, ``/submit``, with a scripted alchemist."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import insert, select, text

from openhorde.domain.interrogations.forms import FormState, form_transition
from openhorde.domain.queue.leases import run_maintenance
from openhorde.storage.repositories.interrogations import best_forms
from openhorde.storage.tables import InterrogationForm, WebhookDelivery
from tests.live_server import Account, Horde, webp_bytes

# The hand-out (FOR UPDATE SKIP LOCKED), the claims and the ledger statements differ by engine.
pytestmark = pytest.mark.both_databases

SOURCE = base64.b64encode(webp_bytes((64, 64))).decode()
ALL_FORMS = ["caption", "interrogation", "nsfw", "GFPGAN"]


async def interrogate(horde: Horde, account: Account | None, forms: list[str], **body: Any) -> httpx.Response:
    body = {"forms": [{"name": name} for name in forms], "source_image": SOURCE, **body}
    headers = account.headers if account else {"apikey": "0000000000"}
    return await horde.client.post("/api/v2/interrogate/async", json=body, headers=headers)


async def queued(horde: Horde, account: Account | None, forms: list[str], **body: Any) -> str:
    response = await interrogate(horde, account, forms, **body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def pop_raw(horde: Horde, account: Account | None, **body: Any) -> httpx.Response:
    body = {"name": "alchemist-1", "forms": ALL_FORMS, **body}
    headers = account.headers if account else {"apikey": "0000000000"}
    return await horde.client.post("/api/v2/interrogate/pop", json=body, headers=headers)


async def pop(horde: Horde, account: Account, **body: Any) -> dict[str, Any]:
    response = await pop_raw(horde, account, **body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def submit(horde: Horde, account: Account, form_id: str, result: Any, state: str = "ok") -> httpx.Response:
    body = {"id": form_id, "result": result, "state": state}
    return await horde.client.post("/api/v2/interrogate/submit", json=body, headers=account.headers)


async def status(horde: Horde, interrogation_id: str) -> dict[str, Any]:
    response = await horde.client.get(f"/api/v2/interrogate/status/{interrogation_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def kudos_of(horde: Horde, account: Account) -> float:
    body = (await horde.client.get("/api/v2/find_user", headers=account.headers)).json()
    return round(float(body["kudos"]), 2)


async def earned_of(horde: Horde, account: Account) -> float:
    """A worker owner's kudos, including the part held in escrow while the owner is untrusted."""
    body = (await horde.client.get("/api/v2/find_user", headers=account.headers)).json()
    return round(float(body["kudos"]) + float(body["evaluating_kudos"]), 2)


async def maintain(horde: Horde, now: float) -> Any:
    async with horde.db.store() as store:
        return await run_maintenance(store, horde.ctx, now)


def result_for(form: dict[str, Any]) -> dict[str, Any]:
    """What a scripted alchemist hands in for a form."""
    return {
        "caption": {"caption": "a red square"},
        "interrogation": {"interrogation": {"tags": [{"text": "red", "confidence": 0.9}]}},
        "nsfw": {"nsfw": False},
    }.get(form["form"], {form["form"]: "R2"})


# -- the round trip ---------------------------------------------------------------------------


async def test_every_kind_of_form_goes_round_trip_and_moves_kudos(horde: Horde) -> None:
    requester = await horde.register("asker", kudos=100)
    owner = await horde.register("alchemist")
    interrogation_id = await queued(horde, requester, ALL_FORMS)
    waiting = await status(horde, interrogation_id)
    assert waiting == {"state": "waiting", "forms": [{"form": f, "state": "waiting"} for f in ALL_FORMS]}

    popped = await pop(horde, owner, amount=4)
    forms = {form["form"]: form for form in popped["forms"]}
    assert sorted(forms) == sorted(ALL_FORMS) and popped["skipped"] == {}
    source = await horde.client.get(forms["caption"]["source_image"])
    assert source.status_code == 200 and Image.open(io.BytesIO(source.content)).size == (64, 64)
    assert "r2_upload" in forms["GFPGAN"] and "r2_upload" not in forms["caption"]
    assert (await status(horde, interrogation_id))["state"] == "processing"

    put = await horde.client.put(forms["GFPGAN"]["r2_upload"], content=webp_bytes((128, 128), (10, 200, 10)))
    assert put.status_code == 200, put.text
    rewards = {}
    for name, form in forms.items():
        answer = await submit(horde, owner, form["id"], result_for(form))
        assert answer.status_code == 200, answer.text
        rewards[name] = answer.json()["reward"]
    # 1 kudo a form, 3 for interrogation, 3 per tile (a 64x64 image is one tile) for a post-processor.
    assert rewards == {"caption": 1, "interrogation": 3, "nsfw": 1, "GFPGAN": 3}

    done = await status(horde, interrogation_id)
    assert done["state"] == "done" and [f["state"] for f in done["forms"]] == ["done"] * 4
    results = {f["form"]: f["result"] for f in done["forms"]}
    assert results["caption"] == {"caption": "a red square"}
    assert results["nsfw"] == {"nsfw": False}
    assert results["interrogation"]["interrogation"]["tags"][0]["text"] == "red"
    image = await horde.client.get(results["GFPGAN"]["GFPGAN"])
    assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size == (128, 128)

    # The alchemist's owner earns the rewards (8); the requester pays them plus 1 kudo per form (12).
    assert await earned_of(horde, owner) == 8
    assert await kudos_of(horde, requester) == 100 - 12


async def test_the_reference_servers_newer_text_forms_work_like_caption(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=20), await horde.register("alchemist")
    newer = ["vectorize", "palette", "describe", "aesthetic"]
    interrogation_id = await queued(horde, requester, newer)
    popped = (await pop(horde, owner, forms=newer, amount=4))["forms"]
    for form in popped:
        answer = await submit(horde, owner, form["id"], {form["form"]: f"a {form['form']}"})
        assert answer.json()["reward"] == 1 and "r2_upload" not in form
    done = await status(horde, interrogation_id)
    assert done["state"] == "done" and {f["form"]: f["result"][f["form"]] for f in done["forms"]} == {
        name: f"a {name}" for name in newer
    }
    assert await kudos_of(horde, requester) == 20 - 8


async def test_post_processed_image_may_come_as_base64(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=10), await horde.register("alchemist")
    interrogation_id = await queued(horde, requester, ["RealESRGAN_x2plus"])
    [form] = (await pop(horde, owner, forms=["RealESRGAN_x2plus"]))["forms"]
    inline = base64.b64encode(webp_bytes((96, 96))).decode()
    assert (await submit(horde, owner, form["id"], {"RealESRGAN_x2plus": inline})).json()["reward"] == 3
    url = (await status(horde, interrogation_id))["forms"][0]["result"]["RealESRGAN_x2plus"]
    assert Image.open(io.BytesIO((await horde.client.get(url)).content)).size == (96, 96)


async def test_missing_upload_is_refused_and_the_form_stays_with_its_worker(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=10), await horde.register("alchemist")
    interrogation_id = await queued(horde, requester, ["strip_background"])
    [form] = (await pop(horde, owner, forms=["strip_background"]))["forms"]
    refused = await submit(horde, owner, form["id"], {"strip_background": "R2"})
    assert refused.status_code == 400 and refused.json()["rc"] == "ImageValidationFailed"
    assert (await status(horde, interrogation_id))["forms"][0]["state"] == "processing"
    assert await kudos_of(horde, requester) == 10


async def test_alchemist_gets_only_the_forms_it_offers_and_images_within_its_tiles(horde: Horde) -> None:
    requester, owner = await horde.register("asker"), await horde.register("alchemist")
    await queued(horde, requester, ["nsfw", "caption"])
    only_nsfw = await pop(horde, owner, forms=["nsfw"], amount=5)
    assert [f["form"] for f in only_nsfw["forms"]] == ["nsfw"]
    big = Image.new("RGB", (1100, 600), (1, 2, 3))
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    await queued(horde, requester, ["GFPGAN"], source_image=base64.b64encode(buffer.getvalue()).decode())
    small_worker = await pop(horde, owner, name="alchemist-2", forms=["GFPGAN"], max_tiles=5)
    assert small_worker["forms"] == []  # 3 × 2 = 6 tiles
    big_worker = await pop(horde, owner, name="alchemist-3", forms=["GFPGAN"], max_tiles=6)
    assert [f["form"] for f in big_worker["forms"]] == ["GFPGAN"]
    assert (await submit(horde, owner, big_worker["forms"][0]["id"], {"GFPGAN": "R2"})).status_code == 400


async def test_the_owners_forms_come_first(horde: Horde) -> None:
    stranger, owner = await horde.register("stranger", kudos=1000), await horde.register("alchemist")
    await queued(horde, stranger, ["caption"])
    own = await queued(horde, owner, ["caption"])
    [form] = (await pop(horde, owner))["forms"]
    assert (await submit(horde, owner, form["id"], {"caption": "mine"})).status_code == 200
    assert (await status(horde, own))["state"] == "done"


async def test_parallel_pops_take_different_forms_and_no_more_than_asked(horde: Horde) -> None:
    requester, owner = await horde.register("asker"), await horde.register("alchemist")
    for _ in range(3):
        await queued(horde, requester, ["caption", "nsfw"])
    for name in ("a-1", "a-2", "a-3"):  # registered first: the race is on the forms, not on creating workers
        await pop(horde, owner, name=name, forms=["interrogation"])
    answers = await asyncio.gather(*(pop(horde, owner, name=name, amount=2) for name in ("a-1", "a-2", "a-3")))
    ids = [form["id"] for answer in answers for form in answer["forms"]]
    assert all(len(answer["forms"]) <= 2 for answer in answers)
    assert len(ids) == len(set(ids)) == 6


# -- status and cancel ------------------------------------------------------------------------


async def test_unknown_interrogation_is_not_found(horde: Horde) -> None:
    for method in ("GET", "DELETE"):
        response = await horde.client.request(method, "/api/v2/interrogate/status/no-such-id")
        assert response.status_code == 404 and response.json()["rc"] == "RequestNotFound"


async def test_cancel_stops_waiting_forms_and_still_pays_the_form_in_progress(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=10), await horde.register("alchemist")
    interrogation_id = await queued(horde, requester, ["caption", "nsfw"])
    [taken] = (await pop(horde, owner, amount=1))["forms"]
    cancelled = await horde.client.delete(f"/api/v2/interrogate/status/{interrogation_id}")
    assert cancelled.status_code == 200, cancelled.text
    states = {f["form"]: f["state"] for f in cancelled.json()["forms"]}
    assert states[taken["form"]] == "processing" and list(states.values()).count("cancelled") == 1
    assert cancelled.json()["state"] == "processing"
    assert (await pop(horde, owner))["forms"] == []

    assert (await submit(horde, owner, taken["id"], result_for(taken))).json()["reward"] == 1
    final = await status(horde, interrogation_id)
    assert final["state"] == "partial" and sorted(f["state"] for f in final["forms"]) == ["cancelled", "done"]
    assert await kudos_of(horde, requester) == 8 and await earned_of(horde, owner) == 1


async def test_cancelling_every_form_says_cancelled(horde: Horde) -> None:
    requester = await horde.register("asker")
    interrogation_id = await queued(horde, requester, ["caption"])
    response = await horde.client.delete(f"/api/v2/interrogate/status/{interrogation_id}")
    assert response.json() == {"state": "cancelled", "forms": [{"form": "caption", "state": "cancelled"}]}


# -- bad input, roles and limits --------------------------------------------------------------


async def test_bad_requests_are_refused_with_the_reference_codes(horde: Horde) -> None:
    requester = await horde.register("asker")
    assert (await interrogate(horde, requester, [])).json()["rc"] == "ValidationError"
    unknown = await interrogate(horde, requester, ["horoscope"])
    assert unknown.status_code == 400 and unknown.json()["rc"] == "ValidationError"
    garbage = await interrogate(horde, requester, ["caption"], source_image="not an image at all")
    assert garbage.status_code == 400 and garbage.json()["rc"] == "SourceImageUnreadable"
    missing = await horde.client.post(
        "/api/v2/interrogate/async", json={"forms": [{"name": "caption"}]}, headers=requester.headers
    )
    assert missing.status_code == 400 and missing.json()["rc"] == "ValidationError"
    private = await interrogate(horde, requester, ["caption"], source_image="http://127.0.0.1:9/cat.png")
    assert private.status_code == 400 and private.json()["rc"] == "SourceImageUrlInvalid"
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buffer, format="PNG")
    huge = await interrogate(horde, requester, ["caption"], source_image=base64.b64encode(buffer.getvalue()).decode())
    assert huge.status_code == 400 and huge.json()["rc"] == "SourceImageResolutionExceeded"
    bad_hook = await interrogate(horde, requester, ["caption"], webhook="ftp://example.com/hook")
    assert bad_hook.status_code == 400
    assert (await horde.client.get("/api/v2/status/performance")).json()["queued_forms"] == 0


async def test_anonymous_may_interrogate_for_free_but_not_run_an_alchemist(horde: Horde) -> None:
    owner = await horde.register("alchemist")
    interrogation_id = await queued(horde, None, ["caption"])
    refused = await pop_raw(horde, None)
    assert refused.status_code == 403 and refused.json()["rc"] == "AnonForbiddenWorker"
    no_key = await horde.client.post("/api/v2/interrogate/pop", json={"name": "x", "forms": ["caption"]})
    assert no_key.status_code == 401
    [form] = (await pop(horde, owner))["forms"]
    assert (await submit(horde, owner, form["id"], {"caption": "free"})).json()["reward"] == 1
    assert (await status(horde, interrogation_id))["state"] == "done"
    assert await earned_of(horde, owner) == 1


async def test_submits_of_others_twice_or_unknown_are_refused(horde: Horde) -> None:
    requester, owner, thief = [await horde.register(n) for n in ("asker", "alchemist", "thief")]
    await queued(horde, requester, ["caption"])
    [form] = (await pop(horde, owner))["forms"]
    stolen = await submit(horde, thief, form["id"], {"caption": "mine"})
    assert stolen.status_code == 403 and stolen.json()["rc"] == "WrongCredentials"
    huge = await submit(horde, owner, form["id"], {"caption": "x" * 70_000})
    assert huge.status_code == 400 and huge.json()["rc"] == "ValidationError"
    assert (await submit(horde, owner, form["id"], {"caption": "ok"})).status_code == 200
    again = await submit(horde, owner, form["id"], {"caption": "ok"})
    assert again.status_code == 400 and again.json()["rc"] == "DuplicateGen"
    unknown = await submit(horde, owner, "00000000-0000-0000-0000-000000000000", {"caption": "?"})
    assert unknown.status_code == 404 and unknown.json()["rc"] == "InvalidJobID"
    assert await earned_of(horde, thief) == 0


async def test_form_concurrency_is_ten_times_the_users(horde: Horde) -> None:
    requester = await horde.register("asker")
    await horde.set_user(requester, concurrency=1)
    await queued(horde, requester, ["caption", "nsfw", "interrogation", "GFPGAN", "CodeFormers"])
    await queued(horde, requester, ["RealESRGAN_x4plus", "RealESRGAN_x2plus", "NMKD_Siax", "4x_AnimeSharp", "caption"])
    refused = await interrogate(horde, requester, ["caption"])
    assert refused.status_code == 429 and refused.json()["rc"] == "TooManyPrompts"


async def test_trusted_only_forms_are_skipped_by_an_untrusted_alchemist(horde: Horde) -> None:
    requester, owner = await horde.register("asker"), await horde.register("alchemist")
    await queued(horde, requester, ["caption"], trusted_workers=True)
    nothing = await pop(horde, owner)
    assert nothing["forms"] == [] and nothing["skipped"] == {"untrusted": 1}
    await horde.set_user(owner, is_trusted=True)
    assert len((await pop(horde, owner))["forms"]) == 1


# -- leases and expiry ------------------------------------------------------------------------


async def test_expired_lease_returns_the_form_to_the_queue(horde: Horde) -> None:
    requester, slowpoke, owner = [await horde.register(n) for n in ("asker", "slowpoke", "alchemist")]
    interrogation_id = await queued(horde, requester, ["GFPGAN"])
    [late] = (await pop(horde, slowpoke, name="slow"))["forms"]
    assert (await maintain(horde, time.time() + 60)).expired_forms == 0
    report = await maintain(horde, time.time() + 3 * 60 + 1)
    assert report.expired_forms == 1
    assert (await status(horde, interrogation_id))["forms"][0]["state"] == "waiting"

    closed = await horde.client.put(late["r2_upload"], content=webp_bytes())
    assert closed.status_code == 403 and closed.json()["rc"] == "UploadClosed"
    [fresh] = (await pop(horde, owner, name="fast"))["forms"]
    assert fresh["id"] == late["id"]
    aborted = await submit(horde, slowpoke, late["id"], {"GFPGAN": "R2"})
    assert aborted.status_code == 403  # the form is the other alchemist's now
    assert (await horde.client.put(fresh["r2_upload"], content=webp_bytes())).status_code == 200
    assert (await submit(horde, owner, fresh["id"], {"GFPGAN": "R2"})).json()["reward"] == 3
    workers = {w["name"]: w for w in (await horde.client.get("/api/v2/workers?type=interrogation")).json()}
    assert workers["slow"]["uncompleted_jobs"] == 1 and workers["fast"]["requests_fulfilled"] == 1


async def test_a_form_faulted_four_times_ends_faulted(horde: Horde) -> None:
    requester, owner = await horde.register("asker", kudos=5), await horde.register("alchemist")
    interrogation_id = await queued(horde, requester, ["caption"])
    for _ in range(4):
        [form] = (await pop(horde, owner))["forms"]
        gave_up = await submit(horde, owner, form["id"], {}, state="faulted")
        assert gave_up.status_code == 200 and gave_up.json()["reward"] == 0
    assert (await pop(horde, owner))["forms"] == []
    assert await status(horde, interrogation_id) == {
        "state": "faulted",
        "forms": [{"form": "caption", "state": "faulted"}],
    }
    assert await kudos_of(horde, requester) == 5


async def test_interrogation_is_removed_after_its_time(horde: Horde) -> None:
    requester, owner = await horde.register("asker"), await horde.register("alchemist")
    interrogation_id = await queued(horde, requester, ["caption"])
    [form] = (await pop(horde, owner))["forms"]
    await submit(horde, owner, form["id"], {"caption": "soon gone"})
    retention = horde.settings.blobs.result_retention_seconds
    assert (await maintain(horde, time.time() + retention - 60)).removed_interrogations == 0
    assert (await maintain(horde, time.time() + retention + 60)).removed_interrogations == 1
    response = await horde.client.get(f"/api/v2/interrogate/status/{interrogation_id}")
    assert response.status_code == 404 and response.json()["rc"] == "RequestNotFound"
    assert (await horde.client.get(form["source_image"])).status_code == 404


# -- workers and figures ----------------------------------------------------------------------


async def test_alchemist_is_listed_as_an_interrogation_worker(horde: Horde) -> None:
    owner = await horde.register("alchemist")
    await pop(horde, owner, name="the-alchemist", forms=["caption", "nsfw"], threads=2)
    await horde.pop(owner, name="the-painter")
    every = {w["name"]: w for w in (await horde.client.get("/api/v2/workers")).json()}
    assert every["the-alchemist"]["type"] == "interrogation" and every["the-painter"]["type"] == "image"
    assert every["the-alchemist"]["forms"] == ["caption", "nsfw"] and every["the-alchemist"]["models"] == []
    assert "forms" not in every["the-painter"]
    alchemists = (await horde.client.get("/api/v2/workers", params={"type": "interrogation"})).json()
    assert [w["name"] for w in alchemists] == ["the-alchemist"]
    painters = (await horde.client.get("/api/v2/workers", params={"type": "image"})).json()
    assert [w["name"] for w in painters] == ["the-painter"]
    assert (await horde.client.get("/api/v2/workers", params={"type": "text"})).json() == []
    by_name = (await horde.client.get("/api/v2/workers/name/the-alchemist")).json()
    assert by_name["type"] == "interrogation"
    by_id = (await horde.client.get(f"/api/v2/workers/{by_name['id']}")).json()
    assert by_id["forms"] == ["caption", "nsfw"] and by_id["threads"] == 2

    [worker_id] = [w["id"] for w in alchemists]
    await queued(horde, owner, ["caption"])
    [form] = (await pop(horde, owner, name="the-alchemist", forms=["caption", "nsfw"], threads=2))["forms"]
    locked = await horde.client.delete(f"/api/v2/workers/{worker_id}", headers=owner.headers)
    assert locked.status_code == 423  # a form in progress
    assert (await submit(horde, owner, form["id"], {"caption": "done"})).status_code == 200

    conflict = await horde.client.post(
        "/api/v2/generate/pop", json={"name": "the-alchemist", "models": ["stable_diffusion"]}, headers=owner.headers
    )
    assert conflict.status_code == 400 and conflict.json()["rc"] == "PolymorphicNameConflict"
    reverse = await pop_raw(horde, owner, name="the-painter")
    assert reverse.status_code == 400 and reverse.json()["rc"] == "PolymorphicNameConflict"

    performance = (await horde.client.get("/api/v2/status/performance")).json()
    assert performance["interrogator_count"] == 1 and performance["interrogator_thread_count"] == 2
    assert performance["worker_count"] == 1


async def test_performance_counts_queued_forms(horde: Horde) -> None:
    requester = await horde.register("asker")
    await queued(horde, requester, ["caption", "nsfw"])
    await queued(horde, requester, ["GFPGAN"])
    assert (await horde.client.get("/api/v2/status/performance")).json()["queued_forms"] == 3


async def test_an_alchemist_makes_no_image_request_possible(horde: Horde) -> None:
    owner, requester = await horde.register("alchemist"), await horde.register("painter")
    await pop(horde, owner)
    created = await horde.generate(requester)
    assert created.status_code == 202 and created.json()["warnings"][0]["code"] == "NoAvailableWorker"
    assert (await horde.check(created.json()["id"]))["is_possible"] is False


@pytest.mark.parametrize("horde_settings", [{"allow_private_addresses": True}])  # the hook is on loopback
async def test_a_delivered_form_queues_its_webhook_event(horde: Horde) -> None:
    requester, owner = await horde.register("asker"), await horde.register("alchemist")
    interrogation_id = await queued(horde, requester, ["caption"], webhook="http://127.0.0.1:9/hook")
    [form] = (await pop(horde, owner))["forms"]
    assert (await submit(horde, owner, form["id"], {"caption": "hooked"})).status_code == 200
    async with horde.db.unit_of_work() as session:
        rows = (await session.execute(select(WebhookDelivery.event, WebhookDelivery.body))).all()
    [(kind, body)] = rows
    event = json.loads(body)
    assert kind == "form" and event["event"] == "form" and event["request"] == interrogation_id
    assert event["id"] == form["id"] and event["result"] == {"caption": "hooked"} and event["kudos"] == 1


@pytest.mark.postgres
async def test_the_hand_out_walks_the_queue_index(horde: Horde, backend: str) -> None:
    """On a deep queue the pop's choice reads ``ix_interrogation_forms_queue`` in order, not the whole table."""
    if backend != "postgres":
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    requester = await horde.register("asker")
    interrogation_id = await queued(horde, requester, ["caption"])
    names = ["caption", "nsfw", "interrogation", "GFPGAN"]
    rows = [
        {
            "id": str(uuid.uuid4()),
            "interrogation_id": interrogation_id,
            "position": i + 1,
            "user_id": requester.id,
            "name": names[i % 4],
            "state": "waiting" if i % 3 else "done",
            "reward_cents": 100,
            "charge_cents": 200,
            "image_tiles": 1 + i % 20,
            "slow_workers": True,
            "trusted_workers": False,
            "priority": float(i % 97),
            "created_at": 1000.0 + i,
            "aborts": 0,
        }
        for i in range(5000)
    ]
    best = best_forms(form_transition(FormState.PROCESSING), False).params(
        forms=["caption", "nsfw"], max_tiles=16, fast=False, trusted=False, limit=2
    )
    async with horde.db.unit_of_work() as session:
        await session.execute(insert(InterrogationForm), rows)
        await session.execute(text("ANALYZE interrogation_forms"))
        dialect = session.get_bind().dialect
        sql = str(best.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(row[0] for row in await session.execute(text("EXPLAIN " + sql)))
    assert "ix_interrogation_forms_queue" in plan and "Seq Scan" not in plan, plan
