"""LoRAs and TIs a job names, fetched on demand from a CivitAI-shaped API and applied by the real engine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.spec import GenerationSpec, LoraSpec, Metadata, TextualInversionSpec
from openhorde.worker.models.tiny import TINY_MODEL_NAME
from openhorde.worker.settings import WorkerSettings
from openhorde.worker.startup import build_engine
from tests.adapter_files import make_lora, make_ti
from tests.civitai_server import API, model, publish_model, publish_search, version
from tests.file_server import FileServer, serving

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.generation,
]

BASE = GenerationSpec(
    model=TINY_MODEL_NAME, prompt="a cat", seed=42, width=64, height=64, steps=3, sampler_name="k_euler"
)


@pytest.fixture(scope="module")
def adapter_bytes(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    folder = tmp_path_factory.mktemp("adapters")
    return make_lora(folder / "lora", seed=5).read_bytes(), make_ti(folder / "ti.safetensors", seed=7).read_bytes()


@pytest.fixture
def server(adapter_bytes: tuple[bytes, bytes]) -> Iterator[FileServer]:
    lora, ti = adapter_bytes
    with serving() as httpd:
        publish_model(httpd, model(101, "Shiny Style", [version(httpd, 1001, lora)]))
        publish_search(httpd, model(9, "EasyNegative", [version(httpd, 90, ti)], kind="TextualInversion"))
        yield httpd


def settings(tmp_path: Path, **over: object) -> WorkerSettings:
    options: dict[str, object] = {"models": [TINY_MODEL_NAME], "model_store": tmp_path, "device": "cpu"}
    return WorkerSettings(**{**options, "allow_lora": True, **over})  # type: ignore[arg-type]


@pytest.fixture
def engine(server: FileServer, tmp_path: Path) -> Engine:
    """The worker's own engine: the catalogue's adapters first, then CivitAI's (here the loopback API)."""
    return build_engine(settings(tmp_path, civitai_url=server.url(API)))


def pixels(spec: GenerationSpec, engine: Engine) -> np.ndarray:
    return np.asarray(engine.generate(spec).images[0].image.convert("RGB")).astype(np.int16)


def test_a_lora_by_id_and_a_ti_by_name_are_fetched_and_change_the_image(engine: Engine, server: FileServer) -> None:
    base = pixels(BASE, engine)
    with_lora = engine.generate(replace(BASE, loras=(LoraSpec("101", inject_trigger="any"),)))
    assert with_lora.metadata == []
    assert np.abs(np.asarray(with_lora.images[0].image.convert("RGB")).astype(np.int16) - base).max() > 0
    by_version = pixels(replace(BASE, loras=(LoraSpec("1001", is_version=True, inject_trigger="any"),)), engine)
    assert np.array_equal(by_version, np.asarray(with_lora.images[0].image.convert("RGB")).astype(np.int16))
    with_ti = engine.generate(replace(BASE, textual_inversions=(TextualInversionSpec("EasyNegative", "negprompt"),)))
    assert with_ti.metadata == [] and np.abs(pixels_of(with_ti) - base).max() > 0
    assert server.requests["/files/1001.safetensors"] == 1  # fetched once, then loaded from the cache


def pixels_of(result: object) -> np.ndarray:
    return np.asarray(result.images[0].image.convert("RGB")).astype(np.int16)  # type: ignore[attr-defined]


def test_a_lora_that_cannot_be_fetched_is_skipped_and_reported(engine: Engine, server: FileServer) -> None:
    del server.files["/files/1001.safetensors"]
    result = engine.generate(replace(BASE, loras=(LoraSpec("101"), LoraSpec("424242"))))
    assert result.images[0].state == "ok"
    assert result.metadata == [
        Metadata("lora", "download_failed", "101"),
        Metadata("lora", "download_failed", "424242"),
    ]
    assert np.array_equal(pixels_of(result), pixels(BASE, engine))  # the job ran without them


def test_an_empty_civitai_url_serves_only_catalogued_adapters(server: FileServer, tmp_path: Path) -> None:
    result = build_engine(settings(tmp_path, civitai_url="")).generate(replace(BASE, loras=(LoraSpec("101"),)))
    assert result.metadata == [Metadata("lora", "download_failed", "101")] and server.seen == []
