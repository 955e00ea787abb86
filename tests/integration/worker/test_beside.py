"""Image generation and alchemy in one process against a live horde: the tiny engine and a tiny safety checker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from openhorde.worker.alchemist import AlchemyModels, alchemist_name
from openhorde.worker.beside import run_beside
from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.safety import build_tiny_safety_checker
from openhorde.worker.horde_client import HordeClient
from openhorde.worker.runner import GenerationEngine, Runner
from openhorde.worker.status import WorkerStats
from tests.integration.worker.test_alchemist import interrogate
from tests.integration.worker.test_runner import (
    FAST_RETRY,
    GatedEngine,
    queue_request,
    tiny_engine,
    wait_done,
    wait_for,
    worker_settings,
)
from tests.live_server import Account, Horde

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.live,
    pytest.mark.generation,
]


class FormPops(httpx.AsyncBaseTransport):
    """Real HTTP to the loopback server; counts the alchemist's pops."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.form_pops: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/interrogate/pop"):
            self.form_pops.append(json.loads(request.content))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return tiny_engine()


async def form_state(horde: Horde, interrogation: str) -> str:
    status = (await horde.client.get(f"/api/v2/interrogate/status/{interrogation}")).json()
    return str(status["state"])


async def start(
    horde: Horde, owner: Account, engine: GenerationEngine, transport: FormPops
) -> tuple[asyncio.Event, asyncio.Task[WorkerStats], HordeClient]:
    settings = worker_settings(horde, owner, alchemist=True)
    client = HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY, transport=transport)
    runner = Runner(settings, engine, client)
    models = AlchemyModels(safety=build_tiny_safety_checker(flag_everything=True))
    alchemist = models.alchemist(settings, client, name=alchemist_name(settings))
    stop = asyncio.Event()
    return stop, asyncio.create_task(run_beside(runner, alchemist, stop=stop)), client


async def test_one_process_serves_an_image_request_and_a_form(horde: Horde, engine: Engine) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    request_id = await queue_request(horde, requester)
    interrogation = await interrogate(horde, requester, "nsfw")
    transport = FormPops()
    stop, task, client = await start(horde, owner, engine, transport)
    async with client:
        status = await wait_done(horde, request_id)

        async def form_done() -> bool:
            return await form_state(horde, interrogation) == "done"

        await wait_for(form_done)
        stop.set()
        stats = await asyncio.wait_for(task, 30)

    assert status["finished"] == 1 and stats.images_done == 1
    # The alchemist pops under a name of its own: the horde refuses an image worker's name for forms.
    assert transport.form_pops and {pop["name"] for pop in transport.form_pops} == {"test-worker-alchemist"}


async def test_no_form_is_popped_while_an_image_job_is_in_hand(horde: Horde, engine: Engine) -> None:
    requester, owner = await horde.register("requester"), await horde.register("owner")
    request_id = await queue_request(horde, requester)
    gated = GatedEngine(engine)
    transport = FormPops()
    stop, task, client = await start(horde, owner, gated, transport)
    async with client:
        await wait_for(gated.started.is_set)
        await asyncio.sleep(0.3)  # a pop the alchemist began before the job came in ends meanwhile
        pops_while_generating = len(transport.form_pops)
        interrogation = await interrogate(horde, requester, "nsfw")
        await asyncio.sleep(0.5)  # several idle-pop intervals: an alchemist that ignored the gate would pop
        assert len(transport.form_pops) == pops_while_generating
        assert await form_state(horde, interrogation) != "done"

        gated.gate.set()
        await wait_done(horde, request_id)

        async def form_done() -> bool:
            return await form_state(horde, interrogation) == "done"

        await wait_for(form_done)  # once the image job is through, the form is served
        stop.set()
        await asyncio.wait_for(task, 30)
