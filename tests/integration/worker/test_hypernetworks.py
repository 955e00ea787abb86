"""Hypernetworks through the worker's own engine: from the catalogue (downloaded once) or the model store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.spec import GenerationResult, GenerationSpec, HypernetworkSpec, Metadata
from openhorde.worker.jobs import pop_request
from openhorde.worker.models.catalogue import TINY_ENTRY
from openhorde.worker.models.tiny import TINY_MODEL_NAME
from openhorde.worker.settings import WorkerSettings
from openhorde.worker.startup import build_engine, shape_capabilities
from tests.adapter_files import make_hypernetwork
from tests.file_server import FileServer, serving, sha256

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.generation,
]

BASE = GenerationSpec(
    model=TINY_MODEL_NAME, prompt="a cat", seed=42, width=64, height=64, steps=3, sampler_name="k_euler"
)


def pixels(result: GenerationResult) -> np.ndarray:
    return np.asarray(result.images[0].image.convert("RGB")).astype(np.int16)


def with_hypernetworks(*pairs: tuple[str, float]) -> GenerationSpec:
    return replace(BASE, hypernetworks=tuple(HypernetworkSpec(name, strength) for name, strength in pairs))


def worker_settings(tmp_path: Path, server: FileServer) -> WorkerSettings:
    """A worker allowing hypernetworks (not LoRAs) whose catalogue lists ``anime`` at the loopback server."""
    body = make_hypernetwork(tmp_path / "made.pt", seed=2).read_bytes()
    url = server.publish("files/anime.pt", body)
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(yaml.safe_dump({"hypernetworks": [{"name": "anime", "url": url, "sha256": sha256(body)}]}))
    store = tmp_path / "store"
    (store / "hypernetworks").mkdir(parents=True)
    make_hypernetwork(store / "hypernetworks" / "ink.pt", seed=3)
    return WorkerSettings(
        models=[TINY_MODEL_NAME],
        model_store=store,
        catalogue=catalogue,
        device="cpu",
        allow_hypernetworks=True,
        civitai_url="",
    )


def test_the_worker_serves_hypernetworks_from_its_catalogue_and_store(tmp_path: Path) -> None:
    with serving() as server:
        settings = worker_settings(tmp_path, server)
        engine: Engine = build_engine(settings)
        capabilities = shape_capabilities(engine.capabilities(), [TINY_ENTRY])
        body = pop_request(settings, capabilities).to_wire()
        assert body["allow_hypernetworks"] is True and body["allow_lora"] is False

        base = pixels(engine.generate(BASE))
        anime = engine.generate(with_hypernetworks(("anime", 1.0)))
        assert anime.metadata == [] and np.abs(pixels(anime) - base).max() > 0
        assert np.array_equal(pixels(engine.generate(with_hypernetworks(("anime", 0.0)))), base)
        ink = engine.generate(with_hypernetworks(("ink", 1.0)))
        assert ink.metadata == [] and not np.array_equal(pixels(ink), pixels(anime))
        both = engine.generate(with_hypernetworks(("anime", 1.0), ("ink", 1.0)))
        assert not np.array_equal(pixels(both), pixels(anime)) and not np.array_equal(pixels(both), pixels(ink))
        assert server.requests["/files/anime.pt"] == 1  # downloaded once, then read from the store

        missing = engine.generate(with_hypernetworks(("absent", 1.0)))
        assert missing.metadata == [Metadata("hypernetwork", "download_failed", "absent")]
        assert np.array_equal(pixels(missing), base)


def test_a_hypernetwork_for_another_model_family_is_skipped(tmp_path: Path) -> None:
    """A file without a layer for the model's text-context width (here only the self-attention width)."""
    store = tmp_path / "store"
    (store / "hypernetworks").mkdir(parents=True)
    make_hypernetwork(store / "hypernetworks" / "other.pt", seed=4, widths=(64,))
    engine = build_engine(
        WorkerSettings(models=[TINY_MODEL_NAME], model_store=store, device="cpu", allow_hypernetworks=True)
    )
    result = engine.generate(with_hypernetworks(("other", 1.0)))
    assert result.metadata == [Metadata("hypernetwork", "baseline_mismatch", "other")]
    assert np.array_equal(pixels(result), pixels(engine.generate(BASE)))
