"""``/generate/async``, ``/check``, ``/status`` through HTTP."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.live_server import Horde, webp_bytes


async def test_request_round_trip_delivers_the_uploaded_image(horde: Horde) -> None:
    requester = await horde.register("alice")
    owner = await horde.register("wally")
    created = await horde.generate(requester, params={"width": 64, "height": 64, "steps": 5, "n": 2})
    assert created.status_code == 202, created.text
    request_id = created.json()["id"]

    job = await horde.pop(owner, amount=2)
    assert len(job["ids"]) == 2 and job["model"] == "stable_diffusion"
    for index in range(2):
        submitted = await horde.upload_and_submit(owner, job, index)
        assert submitted.status_code == 200 and submitted.json()["reward"] > 0

    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert status["done"] and status["finished"] == 2 and len(status["generations"]) == 2
    image = await horde.client.get(status["generations"][0]["img"])
    assert image.status_code == 200
    assert Image.open(io.BytesIO(image.content)).size == (64, 64)


async def test_dry_run_price_is_what_the_ledger_charges(horde: Horde) -> None:
    requester = await horde.register("payer", kudos=1000)
    owner = await horde.register("owner")
    params = {"width": 512, "height": 512, "steps": 30, "n": 3}
    dry = await horde.generate(requester, params=params, dry_run=True)
    assert dry.status_code == 200
    price = dry.json()["kudos"]
    request_id = (await horde.generate(requester, params=params)).json()["id"]
    for _ in range(3):
        job = await horde.pop(owner)
        assert (await horde.upload_and_submit(owner, job)).status_code == 200
    check = (await horde.client.get(f"/api/v2/generate/check/{request_id}")).json()
    assert check["done"] and check["kudos"] == round(price)  # whole kudos, as the reference sends them
    me = (await horde.client.get("/api/v2/find_user", headers=requester.headers)).json()
    assert round(1000 - me["kudos"], 2) == price


async def test_r2_false_returns_base64_images(horde: Horde) -> None:
    requester = await horde.register("b64")
    owner = await horde.register("owner")
    request_id = (await horde.generate(requester, r2=False)).json()["id"]
    job = await horde.pop(owner)
    await horde.upload_and_submit(owner, job)
    generation = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()["generations"][0]
    assert Image.open(io.BytesIO(base64.b64decode(generation["img"]))).format == "WEBP"


async def test_bad_payloads_get_400_with_rc(horde: Horde) -> None:
    requester = await horde.register("bad")
    cases = [
        ({"prompt": ""}, "ValidationError"),
        ({"params": {"width": 100}}, "ValidationError"),
        ({"params": {"steps": 0}}, "ValidationError"),
        ({"params": {"sampler_name": "nope"}}, "ValidationError"),
        ({"params": {"cfg_scale": 7.555}}, "ValidationError"),
        ({"models": ["no such model"]}, "UnexpectedModelName"),
        ({"prompt": "   "}, "MissingPrompt"),
        ({"params": {"loras": [{"name": str(i)} for i in range(6)]}}, "TooManyLoras"),
        ({"source_image": "not base64!"}, "SourceImageUnreadable"),
        ({"source_mask": base64.b64encode(webp_bytes()).decode()}, "SourceMaskUnnecessary"),
        ({"params": {"control_type": "canny"}}, "ControlNetSourceMissing"),
        (
            {
                "params": {"control_type": "canny"},
                "source_image": base64.b64encode(webp_bytes()).decode(),
                "source_processing": "inpainting",
            },
            "ControlNetInpaintingMismatch",
        ),
    ]
    for overrides, rc in cases:
        response = await horde.generate(requester, **overrides)
        assert response.status_code == 400, (overrides, response.text)
        assert response.json()["rc"] == rc, (overrides, response.json())


async def test_a_controlnet_request_goes_only_to_a_controlnet_worker_with_its_steps_capped_at_40(horde: Horde) -> None:
    requester = await horde.register("controller")
    owner = await horde.register("owner")
    source = base64.b64encode(webp_bytes()).decode()
    params = {"width": 64, "height": 64, "steps": 60, "control_type": "depth", "return_control_map": True}
    created = await horde.generate(requester, params=params, source_image=source)
    assert created.status_code == 202, created.text

    assert (await horde.pop(owner))["ids"] == []
    job = await horde.pop(owner, allow_controlnet=True)
    payload = job["payload"]
    assert (payload["control_type"], payload["return_control_map"], payload["ddim_steps"]) == ("depth", True, 40)
    assert job["source_image"]


async def test_unknown_or_missing_api_key_is_401(horde: Horde) -> None:
    body = {"prompt": "x"}
    missing = await horde.client.post("/api/v2/generate/async", json=body)
    wrong = await horde.client.post("/api/v2/generate/async", json=body, headers={"apikey": "x" * 22})
    assert missing.status_code == wrong.status_code == 401
    assert wrong.json()["rc"] == "InvalidAPIKey"


async def test_anonymous_key_may_generate(horde: Horde) -> None:
    response = await horde.client.post(
        "/api/v2/generate/async",
        json={"prompt": "x", "params": {"width": 64, "height": 64}},
        headers={"apikey": "0000000000"},
    )
    assert response.status_code == 202, response.text


async def test_status_of_unknown_request_is_404(horde: Horde) -> None:
    for path in ("check", "status"):
        response = await horde.client.get(f"/api/v2/generate/{path}/00000000-0000-0000-0000-000000000000")
        assert response.status_code == 404 and response.json()["rc"] == "RequestNotFound"


@pytest.mark.both_databases  # PostgreSQL refuses or downgrades in its two steps, after one statement declined
async def test_concurrency_limit_answers_429(horde: Horde) -> None:
    requester = await horde.register("greedy")
    assert (await horde.generate(requester, params={"width": 64, "height": 64, "n": 20})).status_code == 202
    assert (await horde.generate(requester, params={"width": 64, "height": 64, "n": 10})).status_code == 202
    refused = await horde.generate(requester, params={"width": 64, "height": 64, "n": 1})
    assert refused.status_code == 429 and refused.json()["rc"] == "TooManyPrompts"


@pytest.mark.both_databases  # PostgreSQL refuses or downgrades in its two steps, after one statement declined
async def test_upfront_kudos_refused_or_downgraded(horde: Horde) -> None:
    poor = await horde.register("poor")
    big = {"width": 1536, "height": 1536, "steps": 30}
    refused = await horde.generate(poor, params=big)
    assert refused.status_code == 403 and refused.json()["rc"] == "KudosUpfront"
    downgraded = await horde.generate(poor, params=big, allow_downgrade=True)
    assert downgraded.status_code == 202
    rich = await horde.register("rich", kudos=10_000)
    assert (await horde.generate(rich, params=big)).status_code == 202


async def test_cancel_stops_hand_out_but_delivers_in_flight_images(horde: Horde) -> None:
    requester = await horde.register("canceller")
    owner = await horde.register("owner")
    request_id = (await horde.generate(requester, params={"width": 64, "height": 64, "n": 3})).json()["id"]
    job = await horde.pop(owner)
    cancelled = await horde.client.delete(f"/api/v2/generate/status/{request_id}")
    assert cancelled.status_code == 200 and cancelled.json()["done"] and cancelled.json()["waiting"] == 0
    assert (await horde.pop(owner))["ids"] == []
    assert (await horde.upload_and_submit(owner, job)).status_code == 200
    status = (await horde.client.get(f"/api/v2/generate/status/{request_id}")).json()
    assert status["finished"] == 1 and len(status["generations"]) == 1


async def test_img2img_source_reaches_the_worker(horde: Horde) -> None:
    requester = await horde.register("painter")
    owner = await horde.register("owner")
    source = base64.b64encode(webp_bytes((128, 96))).decode()
    created = await horde.generate(
        requester, source_image=source, params={"width": 128, "height": 128, "denoising_strength": 0.5}
    )
    assert created.status_code == 202, created.text
    job = await horde.pop(owner)
    downloaded = await horde.client.get(job["source_image"])
    assert Image.open(io.BytesIO(downloaded.content)).size == (128, 96)
    assert job["payload"]["denoising_strength"] == 0.5


async def test_inpainting_without_mask_or_alpha_is_refused(horde: Horde) -> None:
    requester = await horde.register("inpainter")
    source = base64.b64encode(webp_bytes()).decode()
    refused = await horde.generate(requester, source_image=source, source_processing="inpainting")
    assert refused.status_code == 400 and refused.json()["rc"] == "InpaintingMissingMask"
    mask = base64.b64encode(webp_bytes(color=(255, 255, 255))).decode()
    accepted = await horde.generate(requester, source_image=source, source_mask=mask, source_processing="inpainting")
    assert accepted.status_code == 202


async def test_oversized_source_image_is_refused(horde: Horde) -> None:
    requester = await horde.register("bomber")
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buffer, format="PNG")
    response = await horde.generate(requester, source_image=base64.b64encode(buffer.getvalue()).decode())
    assert response.status_code == 400 and response.json()["rc"] == "SourceImageResolutionExceeded"


@pytest.mark.live  # the server downloads the source image from its own URL
@pytest.mark.parametrize("horde_settings", [{"allow_private_addresses": True}])  # the image is on this loopback horde
async def test_source_image_by_url_is_downloaded_and_checked(horde: Horde) -> None:
    requester = await horde.register("linker")
    owner = await horde.register("owner")
    first = (await horde.generate(requester)).json()["id"]
    await horde.upload_and_submit(owner, await horde.pop(owner))
    image_url = (await horde.client.get(f"/api/v2/generate/status/{first}")).json()["generations"][0]["img"]

    created = await horde.generate(requester, source_image=image_url, params={"width": 64, "height": 64})
    assert created.status_code == 202, created.text
    job = await horde.pop(owner)
    source = await horde.client.get(job["source_image"])
    assert Image.open(io.BytesIO(source.content)).size == (64, 64)

    broken = await horde.generate(requester, source_image=image_url.replace("signature=", "signature=0"))
    assert broken.status_code == 400 and broken.json()["rc"] == "SourceImageUrlInvalid"
