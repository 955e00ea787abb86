"""A worker configured only with model reference names and a horde URL: download, verify, load, serve.

A loopback file server publishes a model reference of the real format and the tiny model as a
single-file checkpoint with its diffusers config files; the horde's catalogue is filled from the same
reference, as ``openhorde admin import-models`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openhorde import model_reference
from openhorde.domain import catalogue
from openhorde.worker.generation.engine import Capabilities
from openhorde.worker.generation.spec import GenerationSpec
from openhorde.worker.horde_client import HordeClient
from openhorde.worker.models.catalogue import ModelEntry
from openhorde.worker.models.hashes import sidecar
from openhorde.worker.runner import Runner
from openhorde.worker.settings import WorkerSettings
from openhorde.worker.startup import StartupError, build_engine, plan_models, shape_capabilities
from tests.file_server import FileServer, reference_json, reference_record, serving, tiny_model_files
from tests.integration.worker.test_runner import FAST_RETRY, SMALL, wait_done
from tests.live_server import Horde

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.generation,
]

NAME = "Tiny Reference (SD1)"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    return tiny_model_files(tmp_path_factory.mktemp("export"))


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving() as httpd:
        yield httpd


def publish(server: FileServer, files: list[tuple[str, bytes]], **record: Any) -> str:
    """Serve the files and a reference naming them as one model; returns the reference's URL."""
    published = [(path, body, server.publish(f"files/{path}", body)) for path, body in files]
    entry = reference_record(NAME, files=published, showcases=["https://example.org/tiny.webp"], **record)
    return server.publish("stable_diffusion.json", reference_json(entry))


def settings_for(tmp_path: Path, reference: str, **over: Any) -> WorkerSettings:
    options: dict[str, Any] = {
        "models": [NAME],
        "model_reference": reference,
        "model_store": tmp_path / "store",
        "device": "cpu",
        "name": "by-name-worker",
        "idle_pop_min_seconds": 0.1,
        "idle_pop_max_seconds": 0.2,
        **over,
    }
    return WorkerSettings(**options)


@pytest.mark.live
async def test_a_worker_named_by_reference_downloads_verifies_loads_and_serves(
    horde: Horde, server: FileServer, tiny_files: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    url = publish(server, tiny_files, features_not_supported=["loras"])
    # The horde's catalogue from the same reference (what `openhorde admin import-models URL` does).
    async with horde.db.store() as store:
        report = await catalogue.import_models(store, model_reference.loads(server.files["/stable_diffusion.json"]))
    assert report.imported == [NAME]
    owner = await horde.register("owner")
    settings = settings_for(tmp_path, url, horde_url=str(horde.client.base_url), api_key=owner.apikey, allow_lora=True)

    plan = await asyncio.to_thread(plan_models, settings)
    settings = settings.model_copy(update={"models": plan.names})
    engine = await asyncio.to_thread(build_engine, settings, plan)
    store = tmp_path / "store"
    checkpoint = store / "tiny" / "openhorde-tiny.safetensors"
    assert checkpoint.read_bytes() == dict(tiny_files)["tiny/openhorde-tiny.safetensors"]
    assert sidecar(checkpoint).is_file() and (store / "tiny" / "config" / "model_index.json").is_file()
    assert all(server.requests[f"/files/{path}"] == 1 for path, _ in tiny_files)
    capabilities = shape_capabilities(engine.capabilities(), [plan.catalogue.model(NAME)])
    assert not capabilities.lora  # the reference says this model takes no LoRAs

    response = await horde.generate(owner, prompt="a lighthouse", models=[NAME], params=SMALL)
    assert response.status_code == 202, response.text
    async with HordeClient(settings.api_url, settings.api_key, retry=FAST_RETRY) as client:
        runner = Runner(settings, engine, client, capabilities=capabilities)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop=stop))
        try:
            status = await wait_done(horde, str(response.json()["id"]))
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert [generation["model"] for generation in status["generations"]] == [NAME]
    assert runner.request.models == [NAME] and runner.request.allow_lora is False


def test_a_second_start_works_offline_from_the_cached_reference(
    tiny_files: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    with serving() as server:
        url = publish(server, tiny_files)
        build_engine(settings_for(tmp_path, url))
    # The reference's server is gone: the cached copy and the verified files are enough.
    engine = build_engine(settings_for(tmp_path, url))
    spec = GenerationSpec(model=NAME, prompt="offline", width=64, height=64, steps=2, sampler_name="k_euler")
    assert engine.generate(spec).images[0].state == "ok"


def test_a_checkpoint_with_the_wrong_hash_is_refused(
    server: FileServer, tiny_files: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    url = publish(server, tiny_files)
    # Same record, but the checkpoint served is another file than the one the reference's sha256sum names.
    path, body = tiny_files[0]
    server.publish(f"files/{path}", body[:-8] + b"\0" * 8)
    with pytest.raises(StartupError, match=r"SHA-256 is .* but .* was expected \(the download was discarded\)"):
        build_engine(settings_for(tmp_path, url))
    assert not (tmp_path / "store" / path).exists()


def test_a_start_that_would_overflow_the_disk_budget_is_refused(
    server: FileServer, tiny_files: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    url = publish(server, tiny_files)
    with pytest.raises(StartupError, match=r"Downloading Tiny Reference \(SD1\) needs .* budget"):
        plan_models(settings_for(tmp_path, url, disk_budget_gb=0.0001))
    assert server.requests["/files/tiny/openhorde-tiny.safetensors"] == 0


def test_a_worker_refusing_nsfw_leaves_out_nsfw_models(server: FileServer, tmp_path: Path) -> None:
    url = publish(server, [("tiny/x.safetensors", b"x")], nsfw=True)
    assert plan_models(settings_for(tmp_path, url)).names == [NAME]
    with pytest.raises(StartupError, match="Every model selected is an NSFW model"):
        plan_models(settings_for(tmp_path, url, nsfw=False))
    assert plan_models(settings_for(tmp_path, url, nsfw=False, models=[NAME, "openhorde-tiny"])).names == [
        "openhorde-tiny"
    ]


def test_features_not_supported_narrow_what_is_advertised() -> None:
    plain = ModelEntry(name="a", baseline="sdxl", features_not_supported=("inpainting", "loras", "hires_fix"))
    full = Capabilities(lora=True)
    assert shape_capabilities(full, [plain]) == Capabilities(painting=False, lora=False, hires_fix=False)
    # One model that supports a feature is enough for the worker to take such jobs.
    assert shape_capabilities(full, [plain, ModelEntry(name="b", baseline="sd1")]) == full


def test_controlnet_is_advertised_only_for_a_served_model_of_a_complete_baseline_that_supports_it() -> None:
    engine = Capabilities(controlnet=True, controlnet_baselines=("sd1",))
    sd1 = ModelEntry(name="a", baseline="sd1")
    assert shape_capabilities(engine, [sd1]).controlnet
    assert not shape_capabilities(engine, [ModelEntry(name="b", baseline="sdxl")]).controlnet
    lacking = ModelEntry(name="c", baseline="sd1", features_not_supported=("controlnet",))
    assert not shape_capabilities(engine, [lacking]).controlnet
    assert not shape_capabilities(Capabilities(), [sd1]).controlnet
