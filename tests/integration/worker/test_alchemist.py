"""The alchemist against a live horde: post-processing forms served with a small real upscaler, captions and
interrogations with tiny BLIP and CLIP models loaded from a model store as the worker loads real ones."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from PIL import Image

from openhorde.worker.alchemist import Alchemist, load_alchemy_models
from openhorde.worker.alchemy.tiny import BLIP_WORDS, save_tiny_blip, save_tiny_clip
from openhorde.worker.horde_client import HordeClient, RetryPolicy
from openhorde.worker.postprocess.chain import PostProcessors
from openhorde.worker.runner import WorkerStopped
from openhorde.worker.settings import WorkerSettings
from tests.live_server import Account, Horde, webp_bytes
from tests.unit.worker.postprocess import weights

# The alchemist's HordeClient talks HTTP to the server's URL: a real socket.
pytestmark = pytest.mark.live

FAST_RETRY = RetryPolicy(base_seconds=0.02, max_seconds=0.1)


@pytest.fixture(scope="module")
def upscaler_only(tmp_path_factory: pytest.TempPathFactory) -> PostProcessors:
    folder = tmp_path_factory.mktemp("store")
    weights.write_pth(folder / "RealESRGAN_x2plus.pth", weights.realesrgan_state(2), wrap="params_ema")
    return PostProcessors.load(["RealESRGAN_x2plus"], folder, torch.device("cpu"))


@pytest.fixture(scope="module")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("models")
    save_tiny_blip(store / "blip-caption")
    save_tiny_clip(store / "clip")
    return store


def settings_for(horde: Horde, owner: Account, **options: Any) -> WorkerSettings:
    return WorkerSettings(
        horde_url=str(horde.client.base_url),
        api_key=owner.apikey,
        name="alchemist-1",
        alchemist=True,
        idle_pop_min_seconds=0.05,
        idle_pop_max_seconds=0.1,
        **options,
    )


async def interrogate(horde: Horde, account: Account, form: str) -> str:
    body = {"forms": [{"name": form}], "source_image": base64.b64encode(webp_bytes((32, 24))).decode()}
    response = await horde.client.post("/api/v2/interrogate/async", json=body, headers=account.headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_an_upscale_form_is_served_and_its_image_delivered(horde: Horde, upscaler_only: PostProcessors) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    face = await interrogate(horde, requester, "GFPGAN")  # this alchemist has no face fixer: never popped
    upscale = await interrogate(horde, requester, "RealESRGAN_x2plus")
    settings = settings_for(horde, owner)
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY) as client:
        alchemist = Alchemist(settings, upscaler_only, client)
        assert alchemist.pop_body()["forms"] == ["RealESRGAN_x2plus"]
        await alchemist.run(max_forms=1)

    assert (alchemist.served, alchemist.faulted) == (1, 0)
    done = (await horde.client.get(f"/api/v2/interrogate/status/{upscale}")).json()
    assert done["state"] == "done"
    url = done["forms"][0]["result"]["RealESRGAN_x2plus"]
    image = Image.open(io.BytesIO((await horde.client.get(url)).content))
    assert image.size == (64, 48)
    waiting = (await horde.client.get(f"/api/v2/interrogate/status/{face}")).json()
    assert waiting["forms"][0]["state"] == "waiting"


class CorruptSources(httpx.AsyncBaseTransport):
    """Real HTTP to the loopback server, except that every image download (a GET) comes back as garbage."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=b"not an image")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_source_that_does_not_decode_faults_the_form(horde: Horde, upscaler_only: PostProcessors) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    interrogation = await interrogate(horde, requester, "RealESRGAN_x2plus")
    settings = settings_for(horde, owner)
    transport = CorruptSources()
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY, transport=transport) as client:
        alchemist = Alchemist(settings, upscaler_only, client)
        await alchemist.run(max_forms=1)

    assert (alchemist.served, alchemist.faulted) == (0, 1)
    form = (await horde.client.get(f"/api/v2/interrogate/status/{interrogation}")).json()["forms"][0]
    assert form["state"] != "done" and "result" not in form


@pytest.mark.parametrize("flag_everything", [True, False])
async def test_the_nsfw_form_is_the_safety_checkers_verdict(horde: Horde, flag_everything: bool) -> None:
    from openhorde.worker.generation.safety import build_tiny_safety_checker

    requester, owner = await horde.register("requester"), await horde.register("owner")
    interrogation = await interrogate(horde, requester, "nsfw")
    settings = settings_for(horde, owner)
    checker = build_tiny_safety_checker(flag_everything=flag_everything)
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY) as client:
        alchemist = Alchemist(settings, PostProcessors(), client, checker)
        assert alchemist.pop_body()["forms"] == ["nsfw"]
        await alchemist.run(max_forms=1)

    done = (await horde.client.get(f"/api/v2/interrogate/status/{interrogation}")).json()
    assert done["state"] == "done"
    assert done["forms"][0]["result"] == {"nsfw": flag_everything}


async def test_an_alchemist_without_post_processors_refuses_to_start(horde: Horde) -> None:
    owner = await horde.register("owner")
    settings = settings_for(horde, owner)
    async with HordeClient(settings.api_url, settings.api_key) as client:
        with pytest.raises(WorkerStopped, match="no form to serve"):
            await Alchemist(settings, PostProcessors(), client).run(max_forms=1)


async def test_caption_and_interrogation_forms_complete_with_models_from_the_store(
    horde: Horde, model_store: Path
) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    caption = await interrogate(horde, requester, "caption")
    ranking = await interrogate(horde, requester, "interrogation")
    # Relative folders are found in the model store, as a worker's owner configures them.
    settings = settings_for(
        horde, owner, model_store=model_store, caption_model=Path("blip-caption"), interrogation_model=Path("clip")
    )
    models = load_alchemy_models(settings, torch.device("cpu"))
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY) as client:
        alchemist = models.alchemist(settings, client)
        assert alchemist.pop_body()["forms"] == ["caption", "interrogation"]
        await alchemist.run(max_forms=2)

    assert (alchemist.served, alchemist.faulted) == (2, 0)
    captioned = (await horde.client.get(f"/api/v2/interrogate/status/{caption}")).json()
    assert captioned["state"] == "done"
    text = captioned["forms"][0]["result"]["caption"]
    assert text and set(text.split()) <= set(BLIP_WORDS)
    ranked = (await horde.client.get(f"/api/v2/interrogate/status/{ranking}")).json()
    assert ranked["state"] == "done"
    categories = ranked["forms"][0]["result"]["interrogation"]
    assert {"artists", "mediums", "movements", "flavors"} <= set(categories)
    assert all(set(item) == {"text", "confidence"} for items in categories.values() for item in items)


def test_a_configured_model_folder_that_holds_no_model_stops_the_start(tmp_path: Path) -> None:
    from openhorde.worker.alchemist import AlchemyStartupError

    settings = WorkerSettings(alchemist=True, model_store=tmp_path, caption_model=Path("missing"))
    with pytest.raises(AlchemyStartupError, match="caption_model"):
        load_alchemy_models(settings, torch.device("cpu"))
