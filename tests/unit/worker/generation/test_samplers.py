"""Every horde sampler name runs, karras where it applies, and switching samplers leaves nothing behind."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
import pytest

from openhorde.api.schemas.generate import Sampler
from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.samplers import (
    FALLBACK_SAMPLER,
    SAMPLER_TABLE,
    SchedulerCache,
    build_scheduler,
    lookup_sampler,
    sampler_table_markdown,
)
from openhorde.worker.generation.spec import GenerationResult, Metadata
from openhorde.worker.models.tiny import tiny_scheduler

from .conftest import NUMPY_COPY_WARNING, NUMPY_WRAP_WARNING, max_diff, pixels, spec

# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = [pytest.mark.filterwarnings(NUMPY_COPY_WARNING), pytest.mark.generation]


def _tiny_config() -> dict[str, Any]:
    scheduler: Any = tiny_scheduler()
    return dict(scheduler.config)


# Every sampler name the server accepts: the worker must map each one.
HORDE_SAMPLERS = list(get_args(Sampler))


def test_the_table_covers_every_horde_sampler_and_explains_approximations() -> None:
    assert sorted(SAMPLER_TABLE) == sorted(HORDE_SAMPLERS)
    for choice in SAMPLER_TABLE.values():
        assert choice.exact or choice.note
        assert choice.supports_karras() or choice.karras_note


@pytest.mark.filterwarnings("ignore:Should have ta>=t0:UserWarning")  # torchsde float32 rounding (k_dpmpp_sde)
@pytest.mark.filterwarnings(NUMPY_WRAP_WARNING)
@pytest.mark.parametrize("karras", [False, True])
@pytest.mark.parametrize("name", [*HORDE_SAMPLERS, "ddim"])
def test_every_sampler_runs(engine: Engine, name: str, karras: bool) -> None:
    result = engine.generate(spec(sampler_name=name, karras=karras, steps=4))
    image = pixels(result.images[0].image)
    assert image.shape == (64, 64, 3)
    assert image.std() > 0
    assert result.metadata == []


def test_switching_samplers_leaves_the_next_job_unchanged(engine: Engine, base_result: GenerationResult) -> None:
    for name in ("k_dpmpp_2m", "k_euler_a", "DDIM"):
        engine.generate(spec(sampler_name=name, karras=True))
    assert max_diff(engine.generate(spec()).images[0].image, base_result.images[0].image) == 0


def test_karras_changes_the_schedule_where_supported(engine: Engine, base_result: GenerationResult) -> None:
    karras = engine.generate(spec(karras=True))
    assert max_diff(karras.images[0].image, base_result.images[0].image) > 0
    ancestral = engine.generate(spec(sampler_name="k_euler_a"))
    ancestral_karras = engine.generate(spec(sampler_name="k_euler_a", karras=True))
    assert max_diff(ancestral.images[0].image, ancestral_karras.images[0].image) > 0


def test_an_unknown_sampler_falls_back_to_k_euler_with_a_note(engine: Engine, base_result: GenerationResult) -> None:
    result = engine.generate(spec(sampler_name="k_unheard_of"))
    assert max_diff(result.images[0].image, base_result.images[0].image) == 0
    assert result.metadata == [Metadata("information", "see_ref", "unknown sampler 'k_unheard_of'; used k_euler")]


def test_lookup_is_case_insensitive() -> None:
    assert lookup_sampler("ddim")[0] is SAMPLER_TABLE["DDIM"]
    assert lookup_sampler("K_EULER_A")[0] is SAMPLER_TABLE["k_euler_a"]
    assert lookup_sampler("nope")[0].horde_name == FALLBACK_SAMPLER


def test_schedulers_are_built_once_per_sampler_and_karras() -> None:
    cache = SchedulerCache(_tiny_config())
    first, _ = cache.get("k_dpmpp_2m", True)
    assert cache.get("k_dpmpp_2m", True)[0] is first
    assert cache.get("k_dpmpp_2m", False)[0] is not first
    assert first.config.use_karras_sigmas


def test_karras_euler_ancestral_spans_the_model_sigma_range() -> None:
    scheduler = build_scheduler(_tiny_config(), SAMPLER_TABLE["k_euler_a"], karras=True)
    scheduler.set_timesteps(10)
    sigmas = scheduler.sigmas.numpy()
    train = ((1 - scheduler.alphas_cumprod) / scheduler.alphas_cumprod).sqrt().numpy()
    assert sigmas[-1] == 0
    assert np.isclose(sigmas[0], train[-1], rtol=1e-4) and np.isclose(sigmas[-2], train[0], rtol=1e-4)
    assert np.all(np.diff(sigmas) < 0)
    assert np.all(np.diff(scheduler.timesteps.numpy()) < 0)


def test_leading_spacing_becomes_linspace_for_k_samplers() -> None:
    config = _tiny_config()
    assert build_scheduler(config, SAMPLER_TABLE["k_euler"], karras=False).config.timestep_spacing == "linspace"
    assert build_scheduler(config, SAMPLER_TABLE["DDIM"], karras=False).config.timestep_spacing == "leading"
    trailing = {**config, "timestep_spacing": "trailing"}
    assert build_scheduler(trailing, SAMPLER_TABLE["k_euler"], karras=False).config.timestep_spacing == "trailing"


def test_the_readme_table_lists_every_sampler() -> None:
    table = sampler_table_markdown()
    assert all(f"| `{name}` |" in table for name in HORDE_SAMPLERS)
    assert "KarrasEulerAncestralScheduler()" in table
    assert table.count("nearest") == 10  # four approximations (both columns), karras on DDIM and lcm
    assert not SAMPLER_TABLE["DDIM"].is_exact(karras=True) and SAMPLER_TABLE["DDIM"].is_exact(karras=False)
