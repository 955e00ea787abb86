"""The engine end to end on the tiny model: job types, sizes, seeds, batches, prompts, tiling, hires fix."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import pytest
from PIL import Image

from openhorde.worker.generation.engine import Engine, GenerationFailed
from openhorde.worker.generation.passes import steps_for_strength
from openhorde.worker.generation.spec import GenerationResult, Metadata
from openhorde.worker.generation.tiling import pipeline_convolutions
from openhorde.worker.models.tiny import TINY_MODEL_NAME, build_tiny_pipeline

from .conftest import NUMPY_COPY_WARNING, TINY_INPAINTING, max_diff, noise_source, pixels, spec, square_mask

# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = [pytest.mark.filterwarnings(NUMPY_COPY_WARNING), pytest.mark.generation]


def _source(width: int = 64, height: int = 64) -> Image.Image:
    return noise_source(3, width, height)


def test_txt2img_gives_the_requested_size(engine: Engine) -> None:
    result = engine.generate(spec(width=64, height=96))
    assert [image.image.size for image in result.images] == [(64, 96)]
    assert result.images[0].state == "ok"
    assert result.seconds > 0


def test_the_same_seed_reproduces_exactly_and_another_seed_differs(
    engine: Engine, base_result: GenerationResult
) -> None:
    again = engine.generate(spec())
    assert max_diff(again.images[0].image, base_result.images[0].image) == 0
    other = engine.generate(spec(seed=43))
    assert max_diff(other.images[0].image, base_result.images[0].image) > 0


def test_a_batch_image_equals_the_single_job_with_seed_plus_index(engine: Engine) -> None:
    batch = engine.generate(spec(n=3, seed=100, sampler_name="k_euler_a"))
    assert len(batch.images) == 3
    for index, generated in enumerate(batch.images):
        single = engine.generate(spec(seed=100 + index, sampler_name="k_euler_a"))
        assert max_diff(generated.image, single.images[0].image) <= 1


@pytest.mark.filterwarnings("ignore:Should have ta>=t0:UserWarning")  # torchsde float32 rounding of sigma_min
def test_sde_batches_seed_each_image_like_a_single_job(engine: Engine) -> None:
    batch = engine.generate(spec(n=2, seed=7, sampler_name="k_dpmpp_sde"))
    single = engine.generate(spec(seed=8, sampler_name="k_dpmpp_sde"))
    assert max_diff(batch.images[1].image, single.images[0].image) <= 1
    assert (
        max_diff(engine.generate(spec(seed=7, sampler_name="k_dpmpp_sde")).images[0].image, batch.images[0].image) <= 1
    )


def test_a_negative_prompt_changes_the_output(engine: Engine, base_result: GenerationResult) -> None:
    split = engine.generate(spec(prompt="a photo of a cat###blurry, ugly"))
    field = engine.generate(spec(negative_prompt="blurry, ugly"))
    assert max_diff(split.images[0].image, base_result.images[0].image) > 0
    assert max_diff(split.images[0].image, field.images[0].image) == 0


def test_clip_skip_two_differs_from_one(engine: Engine, base_result: GenerationResult) -> None:
    skipped = engine.generate(spec(clip_skip=2))
    assert max_diff(skipped.images[0].image, base_result.images[0].image) > 0


def test_the_tail_of_a_long_prompt_is_not_cut_off(engine: Engine) -> None:
    head = " ".join(["a cat on a mat"] * 20)  # 100 tokens: beyond CLIP's 77
    red = engine.generate(spec(prompt=head + ", red sky"))
    blue = engine.generate(spec(prompt=head + ", blue sea"))
    assert max_diff(red.images[0].image, blue.images[0].image) > 0


def test_weight_syntax_changes_the_output(engine: Engine, base_result: GenerationResult) -> None:
    weighted = engine.generate(spec(prompt="a photo of a (cat:1.8)"))
    plain = engine.generate(spec(prompt="a photo of a cat"))
    assert max_diff(plain.images[0].image, base_result.images[0].image) == 0
    assert max_diff(weighted.images[0].image, base_result.images[0].image) > 0


def test_dynamic_prompts_resolve_the_same_way_for_a_seed(engine: Engine) -> None:
    prompt = "a {red|green|blue|yellow} {cat|dog|bird}"
    first = engine.generate(spec(prompt=prompt, seed=5))
    second = engine.generate(spec(prompt=prompt, seed=5))
    assert max_diff(first.images[0].image, second.images[0].image) == 0


def test_tiling_changes_the_output_and_is_undone_after_the_job(engine: Engine, base_result: GenerationResult) -> None:
    tiled = engine.generate(spec(tiling=True))
    assert max_diff(tiled.images[0].image, base_result.images[0].image) > 0
    pipe = engine._models[TINY_MODEL_NAME].base
    assert all(conv.padding_mode == "zeros" for conv in pipeline_convolutions(pipe))
    assert max_diff(engine.generate(spec()).images[0].image, base_result.images[0].image) == 0


def test_hires_fix_renders_above_native_size(engine: Engine) -> None:
    plain = engine.generate(spec(width=128, height=128, steps=2))
    hires = engine.generate(spec(width=128, height=128, steps=2, hires_fix=True, hires_fix_denoising_strength=0.5))
    assert hires.images[0].image.size == (128, 128)
    assert max_diff(plain.images[0].image, hires.images[0].image) > 0


def test_hires_fix_is_skipped_at_native_size(engine: Engine, base_result: GenerationResult) -> None:
    hires = engine.generate(spec(hires_fix=True))
    assert max_diff(hires.images[0].image, base_result.images[0].image) == 0


def test_first_pass_size_follows_the_native_resolution() -> None:
    from openhorde.worker.generation.pipelines import LoadedModel

    model = LoadedModel.create("tiny", build_tiny_pipeline(), None)
    assert model.native_size == 64
    assert model.first_pass_size(64, 64) is None
    assert model.first_pass_size(128, 128) == (64, 64)
    assert model.first_pass_size(128, 256) == (64, 128)


def test_img2img_keeps_the_size_and_follows_the_source(engine: Engine) -> None:
    source = _source(64, 96)
    light = engine.generate(
        spec(width=64, height=96, source_processing="img2img", source_image=source, denoising_strength=0.3)
    )
    strong = engine.generate(
        spec(width=64, height=96, source_processing="img2img", source_image=source, denoising_strength=0.9)
    )
    assert light.images[0].image.size == (64, 96)
    distance = np.abs(pixels(light.images[0].image) - pixels(source)).mean()
    assert distance < np.abs(pixels(strong.images[0].image) - pixels(source)).mean()


def test_img2img_resizes_a_source_of_another_size(engine: Engine) -> None:
    result = engine.generate(spec(n=2, source_processing="img2img", source_image=_source(100, 80)))
    assert [image.image.size for image in result.images] == [(64, 64), (64, 64)]


def test_inpainting_keeps_the_unmasked_region_and_repaints_the_masked_one(engine: Engine) -> None:
    source, mask = _source(), square_mask()
    result = engine.generate(spec(n=2, source_processing="inpainting", source_image=source, source_mask=mask))
    assert [image.image.size for image in result.images] == [(64, 64), (64, 64)]
    inside = np.asarray(mask) > 127
    difference = np.abs(pixels(result.images[0].image) - pixels(source)).mean(axis=2)
    assert difference[~inside].mean() < 2
    assert difference[inside].mean() > 20


def test_the_mask_comes_from_the_alpha_channel_when_none_is_sent(engine: Engine) -> None:
    source = _source().convert("RGBA")
    alpha = Image.new("L", (64, 64), 255)
    alpha.paste(0, (16, 16, 48, 48))  # transparent = repaint
    source.putalpha(alpha)
    result = engine.generate(spec(source_processing="inpainting", source_image=source))
    repaint = np.asarray(alpha) == 0
    difference = np.abs(pixels(result.images[0].image) - pixels(source)).mean(axis=2)
    assert difference[~repaint].mean() < 2
    assert difference[repaint].mean() > 20
    assert result.metadata == []


def test_outpainting_fills_transparent_borders(engine: Engine) -> None:
    canvas = Image.new("RGBA", (96, 64), (0, 0, 0, 0))
    canvas.paste(_source(64, 64).convert("RGBA"), (16, 0))
    result = engine.generate(spec(width=96, height=64, source_processing="outpainting", source_image=canvas))
    output = pixels(result.images[0].image)
    assert output.shape == (64, 96, 3)
    assert np.abs(output[:, 20:76] - pixels(_source())[:, 4:60]).mean() < 2
    assert output[:, :12].std() > 0


def test_painting_without_a_source_or_mask_uses_stand_ins_and_says_so(engine: Engine) -> None:
    result = engine.generate(spec(source_processing="inpainting"))
    assert result.images[0].image.size == (64, 64)
    assert Metadata("source_image", "parse_failed") in result.metadata
    assert Metadata("source_mask", "parse_failed") in result.metadata


def test_an_inpainting_model_serves_every_job_type(engine: Engine) -> None:
    txt2img = engine.generate(spec(model=TINY_INPAINTING))
    img2img = engine.generate(spec(model=TINY_INPAINTING, source_processing="img2img", source_image=_source()))
    painted = engine.generate(
        spec(model=TINY_INPAINTING, source_processing="inpainting", source_image=_source(), source_mask=square_mask())
    )
    assert {result.images[0].image.size for result in (txt2img, img2img, painted)} == {(64, 64)}
    inside = np.asarray(square_mask()) > 127
    assert np.abs(pixels(painted.images[0].image) - pixels(_source()))[~inside].mean() < 2


def test_an_unknown_model_fails_with_the_reason(engine: Engine) -> None:
    with pytest.raises(GenerationFailed) as failure:
        engine.generate(spec(model="no-such-model"))
    assert "no-such-model" in failure.value.reason


def test_an_impossible_size_fails_with_the_reason(engine: Engine) -> None:
    with pytest.raises(GenerationFailed) as failure:
        engine.generate(spec(width=60))
    assert "60" in failure.value.reason


def test_models_are_kept_up_to_the_limit_least_recent_out() -> None:
    loads: list[str] = []

    def load(name: str) -> object:
        loads.append(name)
        return build_tiny_pipeline()

    engine = Engine(load, device="cpu")
    engine.preload("one")
    engine.preload("one")
    engine.preload("two")
    assert loads == ["one", "two"]
    assert engine.loaded_models() == ["two"]
    engine.unload()
    assert engine.loaded_models() == []


def test_capabilities_follow_the_setup(engine: Engine) -> None:
    assert engine.capabilities().lora and engine.capabilities().img2img and engine.capabilities().painting
    bare = Engine(lambda name: build_tiny_pipeline(), device="cpu").capabilities()
    assert not bare.lora and not bare.can_censor and not bare.post_processing and not bare.controlnet


@pytest.mark.parametrize(("effective", "strength"), [(3, 0.6), (1, 0.75), (30, 0.65), (2, 0.3), (5, 1.0), (3, 0.01)])
def test_img2img_runs_the_requested_number_of_steps(effective: int, strength: float) -> None:
    steps = steps_for_strength(effective, strength)
    assert min(int(steps * strength), steps) >= effective
    assert int((steps - 1) * strength) < effective or steps == effective


def test_an_evicted_model_is_freed() -> None:
    """The engine keeps the heap frozen between loads; eviction must still let the old model go."""
    unets: list[weakref.ref[Any]] = []

    def load(name: str) -> Any:
        pipe = build_tiny_pipeline(inpainting=name == TINY_INPAINTING)
        # A reference cycle, as real models have (hooks, adapters): only the collector can free it.
        pipe.unet.__dict__["cycle"] = [pipe.unet]
        unets.append(weakref.ref(pipe.unet))
        return pipe

    engine = Engine(load, device="cpu", max_loaded_models=1)
    engine.preload(TINY_MODEL_NAME)
    engine.preload(TINY_INPAINTING)
    assert engine.loaded_models() == [TINY_INPAINTING]
    assert unets[0]() is None and unets[1]() is not None
