"""The worker runtime against a live horde: the real engine on the tiny model, 64 px, 2 steps."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from PIL import Image

from openhorde.worker.generation.engine import Engine, GenerationFailed
from openhorde.worker.generation.spec import GenerationResult, GenerationSpec
from openhorde.worker.horde_client import HordeClient, RetryPolicy
from openhorde.worker.models.tiny import TINY_MODEL_NAME, build_tiny_pipeline
from openhorde.worker.runner import GenerationEngine, Runner, WorkerStopped
from openhorde.worker.settings import WorkerSettings
from tests.live_server import Account, Horde

# The runner's HordeClient talks HTTP to the server's URL: a real socket.
# A real engine generating on the CPU; the runner's HordeClient talks HTTP to the server's URL: a real socket.
pytestmark = [
    pytest.mark.filterwarnings(
        # diffusers' schedulers call np.array() on torch tensors, whose __array__ predates NumPy 2's copy keyword.
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    ),
    pytest.mark.live,
    pytest.mark.generation,
]

SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "k_euler"}
FAST_RETRY = RetryPolicy(base_seconds=0.02, max_seconds=0.1)


class Recorder(httpx.AsyncBaseTransport):
    """Real HTTP to the loopback server; records pop and submit bodies, and answers 503 to the first N submits."""

    def __init__(self, failing_submits: int = 0) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.failing_submits = failing_submits
        self.pops: list[dict[str, Any]] = []
        self.submits: list[dict[str, Any]] = []
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/generate/pop"):
            self.pops.append(json.loads(request.content))
        if path.endswith("/generate/submit"):
            self.submits.append(json.loads(request.content))
            if self.refused < self.failing_submits:
                self.refused += 1
                return httpx.Response(503, json={"message": "Service Unavailable", "rc": "ServiceUnavailable"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def tiny_engine(load: Callable[[str], Any] | None = None) -> Engine:
    return Engine(load or (lambda name: build_tiny_pipeline()), device="cpu")


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine for the module: the model stays loaded between tests, as it does between jobs.

    One warm-up generation here pays for the lazy imports and first-run costs, so the tests' own times
    measure the worker.
    """
    engine = tiny_engine()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        engine.generate(GenerationSpec(model=TINY_MODEL_NAME, prompt="warm-up", width=64, height=64, steps=1))
    return engine


def worker_settings(horde: Horde, owner: Account, **overrides: Any) -> WorkerSettings:
    options: dict[str, Any] = {
        "horde_url": str(horde.client.base_url),
        "api_key": owner.apikey,
        "name": "test-worker",
        "models": [TINY_MODEL_NAME],
        "idle_pop_min_seconds": 0.1,
        "idle_pop_max_seconds": 0.2,
        "error_backoff_seconds": 0.05,
        **overrides,
    }
    return WorkerSettings(**options)


@asynccontextmanager
async def running(
    horde: Horde, owner: Account, engine: GenerationEngine, transport: Recorder | None = None, **overrides: Any
) -> AsyncIterator[tuple[Runner, asyncio.Event, asyncio.Task[Any]]]:
    """A runner working in the background; stopped (gracefully) on exit."""
    settings = worker_settings(horde, owner, **overrides)
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY, transport=transport) as client:
        runner = Runner(settings, engine, client)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop=stop))
        try:
            yield runner, stop, task
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.shield(task), 30)


async def queue_request(horde: Horde, account: Account, prompt: str = "a lighthouse", **params: Any) -> str:
    response = await horde.generate(account, prompt=prompt, models=[TINY_MODEL_NAME], params={**SMALL, **params})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def wait_for(condition: Callable[[], Any], timeout_s: float = 20.0) -> None:
    """Poll ``condition`` (plain or async) until it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def wait_done(horde: Horde, request_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return bool((await horde.check(request_id))["done"])

    await wait_for(done)
    response = await horde.client.get(f"/api/v2/generate/status/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def image_size(horde: Horde, url: str) -> tuple[int, int]:
    response = await horde.client.get(url)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content)).size


async def test_a_worker_completes_a_txt2img_request(horde: Horde, engine: Engine) -> None:
    owner = await horde.register("owner")
    request_id = await queue_request(horde, owner, seed="1234")
    recorder = Recorder()
    async with running(horde, owner, engine, recorder) as (runner, _stop, _task):
        status = await wait_done(horde, request_id)
        await wait_for(lambda: runner.stats.images_done == 1)
    assert status["finished"] == 1 and not status["faulted"]
    [generation] = status["generations"]
    assert generation["state"] == "ok" and generation["seed"] == "1234"
    assert generation["worker_name"] == "test-worker" and generation["model"] == TINY_MODEL_NAME
    assert await image_size(horde, generation["img"]) == (64, 64)
    assert runner.stats.jobs_done == 1 and runner.stats.kudos > 0 and runner.stats.faulted == 0
    [entry] = runner.stats.timeline
    assert entry.job_id == generation["id"] and entry.end > entry.start and entry.images == 1
    assert [body["generation"] for body in recorder.submits] == ["R2"]


async def test_the_pop_says_it_cannot_censor_without_a_safety_model(horde: Horde, engine: Engine) -> None:
    owner = await horde.register("owner")
    recorder = Recorder()
    async with running(horde, owner, engine, recorder, max_power=16, max_batch=2):
        await wait_for(lambda: len(recorder.pops) >= 2)  # it keeps polling an empty horde
    body = recorder.pops[0]
    assert body["can_censor_nsfw"] is False
    assert body["name"] == "test-worker" and body["models"] == [TINY_MODEL_NAME]
    assert body["amount"] == 2 and body["max_pixels"] == 16 * 8 * 64 * 64
    assert body["bridge_agent"].startswith("OpenHorde Worker:")


async def test_a_batch_is_completed(horde: Horde, engine: Engine) -> None:
    owner = await horde.register("owner")
    request_id = await queue_request(horde, owner, n=3)
    recorder = Recorder()
    async with running(horde, owner, engine, recorder, max_batch=3) as (runner, _stop, _task):
        status = await wait_done(horde, request_id)
    assert status["finished"] == 3 and len(status["generations"]) == 3
    assert len(runner.stats.timeline) == 1 and runner.stats.timeline[0].images == 3  # one job of three images
    assert {await image_size(horde, g["img"]) for g in status["generations"]} == {(64, 64)}
    indexes = sorted(m["ref"] for body in recorder.submits for m in body["gen_metadata"] if m["type"] == "batch_index")
    assert indexes == ["0", "1", "2"]


async def test_submits_are_retried_through_a_failing_horde(horde: Horde, engine: Engine) -> None:
    owner = await horde.register("owner")
    request_id = await queue_request(horde, owner)
    recorder = Recorder(failing_submits=3)
    async with running(horde, owner, engine, recorder) as (runner, _stop, _task):
        status = await wait_done(horde, request_id)
    assert recorder.refused == 3 and len(recorder.submits) == 4  # three 503s, then the one that landed
    assert status["finished"] == 1 and runner.stats.images_done == 1 and runner.stats.dropped == 0


async def test_a_job_the_engine_cannot_do_is_faulted_and_requeued(horde: Horde) -> None:
    owner = await horde.register("owner")

    def load(name: str) -> Any:
        if name != TINY_MODEL_NAME:
            raise FileNotFoundError(f"no weights for {name}")
        return build_tiny_pipeline()

    response = await horde.generate(owner, prompt="a lighthouse", models=["stable_diffusion"], params=SMALL)
    request_id = str(response.json()["id"])
    recorder = Recorder()
    settings = worker_settings(horde, owner, models=[TINY_MODEL_NAME, "stable_diffusion"])
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY, transport=recorder) as client:
        stats = await asyncio.wait_for(Runner(settings, tiny_engine(load), client).run(max_jobs=1), 30)
    assert stats.faulted == 1 and stats.images_done == 0
    state = await horde.check(request_id)
    assert state["restarted"] == 1 and state["waiting"] == 1 and state["processing"] == 0 and not state["done"]
    faulted = recorder.submits[0]
    assert faulted["state"] == "faulted"
    assert faulted["gen_metadata"][0]["type"] == "information"
    assert "could not be loaded" in faulted["gen_metadata"][0]["ref"]
    retry = await horde.pop(owner, name="another-worker")  # back in the queue for anyone
    assert retry["ids"] and retry["ids"][0] != faulted["id"]


class GatedEngine:
    """The real engine, but each generation waits until the test opens the gate."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.started = threading.Event()
        self.gate = threading.Event()

    def generate(self, spec: GenerationSpec) -> GenerationResult:
        self.started.set()
        if not self.gate.wait(30):
            raise GenerationFailed("gate never opened")
        return self.engine.generate(spec)


async def test_graceful_stop_finishes_the_current_job_and_returns_the_waiting_one(horde: Horde, engine: Engine) -> None:
    owner = await horde.register("owner")
    first = await queue_request(horde, owner, "first")
    second = await queue_request(horde, owner, "second")
    gated = GatedEngine(engine)
    async with running(horde, owner, gated, queue_size=1) as (runner, stop, task):
        await wait_for(lambda: gated.started.is_set() and runner.waiting == 1)
        stop.set()
        await asyncio.sleep(0.05)
        assert not task.done()  # still generating the first job
        gated.gate.set()
        stats = await asyncio.wait_for(task, 30)
    assert (stats.jobs_done, stats.images_done, stats.faulted) == (1, 1, 1)
    states = {request_id: await horde.check(request_id) for request_id in (first, second)}
    finished = [rid for rid, state in states.items() if state["done"]]
    assert len(finished) == 1
    [returned] = [state for state in states.values() if not state["done"]]
    assert returned["waiting"] == 1 and returned["processing"] == 0 and returned["restarted"] == 1


async def test_an_invalid_key_stops_the_worker_with_a_clear_error(horde: Horde, engine: Engine) -> None:
    settings = worker_settings(horde, Account(id=0, username="nobody", apikey="not-a-real-key-123456"))
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY) as client:
        with pytest.raises(WorkerStopped, match="refuses this worker"):
            await asyncio.wait_for(Runner(settings, engine, client).run(), 10)


async def test_max_jobs_stops_after_delivering(horde: Horde, engine: Engine) -> None:
    owner = await horde.register("owner")
    request_id = await queue_request(horde, owner, n=2)
    settings = worker_settings(horde, owner)
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY) as client:
        stats = await asyncio.wait_for(Runner(settings, engine, client).run(max_jobs=2), 30)
    assert stats.images_done == 2 and len(stats.timeline) == 2
    assert (await horde.check(request_id))["done"]
