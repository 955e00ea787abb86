"""Shared fixtures: one engine over the tiny model (built once), LoRA and TI files made with peft, helpers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from openhorde.worker.generation.adapters import AdapterFile, AdapterLookup
from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.spec import GenerationResult, GenerationSpec
from openhorde.worker.models.tiny import TINY_MODEL_NAME, build_tiny_pipeline
from tests.adapter_files import make_hypernetwork, make_lora, make_ti
from tests.conftest import torch_threads

TINY_INPAINTING = TINY_MODEL_NAME + "-inpainting"
NUMPY_COPY_WARNING = "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
"""diffusers' k-samplers call ``np.array(tensor)``; numpy 2.4 warns that torch 2.13's ``Tensor.__array__`` lacks
``copy=``. Harmless, and not ours to fix: test modules that run the engine ignore exactly this warning."""
NUMPY_WRAP_WARNING = "ignore:__array_wrap__ must accept context and return_scalar:DeprecationWarning"
"""The same numpy 2 / torch mismatch, raised by the KDPM2 schedulers (k_dpm_2, k_dpm_2_a)."""
BASE_SPEC = GenerationSpec(
    model=TINY_MODEL_NAME, prompt="a photo of a cat", seed=42, width=64, height=64, steps=3, sampler_name="k_euler"
)


def spec(**changes: Any) -> GenerationSpec:
    """The base job (tiny model, 64 px, 3 steps, k_euler) with some fields changed."""
    return replace(BASE_SPEC, **changes)


def pixels(image: Image.Image) -> np.ndarray:
    """An image as a signed integer array, so differences do not wrap around."""
    return np.asarray(image.convert("RGB")).astype(np.int16)


def max_diff(left: Image.Image, right: Image.Image) -> int:
    """The largest per-channel difference between two images."""
    return int(np.abs(pixels(left) - pixels(right)).max())


def noise_source(seed: int, width: int = 64, height: int = 64) -> Image.Image:
    """A random RGB source image, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def square_mask(size: int = 64) -> Image.Image:
    """A mask that repaints the middle square (16 px from each edge of a 64 px image)."""
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (16, 16, 48, 48))
    return mask


class Resolver:
    """The adapter resolver tests hand to the engine: a dict of files the fixtures made."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], AdapterFile] = {}
        self.calls: list[tuple[str, str]] = []

    def __call__(self, lookup: AdapterLookup) -> AdapterFile | None:
        self.calls.append((lookup.kind, lookup.name))
        return self.files.get((lookup.kind, lookup.name))


def _load_tiny(name: str) -> Any:
    if name == TINY_MODEL_NAME:
        return build_tiny_pipeline()
    if name == TINY_INPAINTING:
        return build_tiny_pipeline(inpainting=True)
    raise KeyError(f"no such model: {name}")


@pytest.fixture(scope="session")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> Resolver:
    """LoRAs ``style-a`` (with triggers), ``style-b`` (UNet only), TI ``emb`` and hypernetwork ``hyper`` on disk."""
    root = tmp_path_factory.mktemp("adapters")
    resolver = Resolver()
    resolver.files["lora", "style-a"] = AdapterFile(make_lora(root / "a", seed=5), ("shiny", "glossy"))
    resolver.files["lora", "style-b"] = AdapterFile(make_lora(root / "b", seed=6, with_text_encoder=False))
    resolver.files["ti", "emb"] = AdapterFile(make_ti(root / "emb.safetensors", seed=7))
    resolver.files["hypernetwork", "hyper"] = AdapterFile(make_hypernetwork(root / "hyper.pt", seed=8))
    return resolver


@pytest.fixture(scope="session")
def engine(resolver: Resolver) -> Engine:
    """The engine most tests share: CPU, no safety checker, both tiny models kept loaded."""
    torch.set_num_threads(torch_threads())
    return Engine(_load_tiny, device="cpu", resolve_adapter=resolver, max_loaded_models=2)


@pytest.fixture(scope="session")
def base_result(engine: Engine) -> GenerationResult:
    """The base job's output, to compare variations with."""
    return engine.generate(BASE_SPEC)
