"""LoRAs and textual inversions through the engine, with files made by peft and safetensors."""

from __future__ import annotations

import pytest

from openhorde.worker.generation.adapters import pick_triggers, ti_token
from openhorde.worker.generation.engine import Engine
from openhorde.worker.generation.spec import GenerationResult, LoraSpec, Metadata, TextualInversionSpec

from .conftest import NUMPY_COPY_WARNING, Resolver, max_diff, spec

# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = [pytest.mark.filterwarnings(NUMPY_COPY_WARNING), pytest.mark.generation]


def test_a_lora_changes_the_output_and_is_off_again_afterwards(engine: Engine, base_result: GenerationResult) -> None:
    with_lora = engine.generate(spec(loras=(LoraSpec("style-a"),)))
    assert with_lora.metadata == []
    assert max_diff(with_lora.images[0].image, base_result.images[0].image) > 0
    assert max_diff(engine.generate(spec()).images[0].image, base_result.images[0].image) == 0


def test_zero_strengths_give_the_base_output(engine: Engine, base_result: GenerationResult) -> None:
    zero = engine.generate(spec(loras=(LoraSpec("style-a", model=0.0, clip=0.0),)))
    assert max_diff(zero.images[0].image, base_result.images[0].image) <= 1


def test_model_and_clip_strengths_act_separately(engine: Engine) -> None:
    unet_only = engine.generate(spec(loras=(LoraSpec("style-a", model=1.0, clip=0.0),)))
    clip_only = engine.generate(spec(loras=(LoraSpec("style-a", model=0.0, clip=1.0),)))
    both = engine.generate(spec(loras=(LoraSpec("style-a"),)))
    assert max_diff(unet_only.images[0].image, both.images[0].image) > 0
    assert max_diff(clip_only.images[0].image, both.images[0].image) > 0


def test_two_loras_at_once(engine: Engine, base_result: GenerationResult) -> None:
    first = engine.generate(spec(loras=(LoraSpec("style-a"),)))
    second = engine.generate(spec(loras=(LoraSpec("style-b", clip=0.5),)))
    both = engine.generate(spec(loras=(LoraSpec("style-a"), LoraSpec("style-b", clip=0.5))))
    assert both.metadata == []
    for single in (first, second, base_result):
        assert max_diff(both.images[0].image, single.images[0].image) > 0
    again = engine.generate(spec(loras=(LoraSpec("style-a"),)))
    assert max_diff(again.images[0].image, first.images[0].image) == 0


def test_a_missing_lora_is_skipped_with_a_note(engine: Engine, base_result: GenerationResult) -> None:
    result = engine.generate(spec(loras=(LoraSpec("not-on-disk"),)))
    assert result.metadata == [Metadata("lora", "download_failed", "not-on-disk")]
    assert max_diff(result.images[0].image, base_result.images[0].image) == 0


def test_trigger_words_are_prepended(engine: Engine) -> None:
    injected = engine.generate(spec(loras=(LoraSpec("style-a", inject_trigger="glossy"),)))
    written = engine.generate(spec(prompt="glossy, a photo of a cat", loras=(LoraSpec("style-a"),)))
    assert max_diff(injected.images[0].image, written.images[0].image) == 0


def test_pick_triggers() -> None:
    triggers = ("shiny style", "glossy finish", "matte")
    assert pick_triggers(triggers, "any") == ["shiny style"]
    assert pick_triggers(triggers, "all") == list(triggers)
    assert pick_triggers(triggers, "MATTE") == ["matte"]
    assert pick_triggers(triggers, "gloss") == ["glossy finish"]
    assert pick_triggers(triggers, "shinny stile") == ["shiny style"]
    assert pick_triggers(triggers, None) == []
    assert pick_triggers((), "any") == []


def test_a_textual_inversion_changes_the_output(engine: Engine, base_result: GenerationResult) -> None:
    in_prompt = engine.generate(spec(textual_inversions=(TextualInversionSpec("emb"),)))
    in_negative = engine.generate(spec(textual_inversions=(TextualInversionSpec("emb", inject="negprompt"),)))
    weaker = engine.generate(spec(textual_inversions=(TextualInversionSpec("emb", strength=0.5),)))
    assert in_prompt.metadata == []
    for variant in (in_negative, weaker, base_result):
        assert max_diff(in_prompt.images[0].image, variant.images[0].image) > 0
    written = engine.generate(spec(prompt=f"{ti_token('emb')} a photo of a cat"))
    assert max_diff(in_prompt.images[0].image, written.images[0].image) == 0


def test_a_missing_textual_inversion_is_skipped_with_a_note(engine: Engine, resolver: Resolver) -> None:
    result = engine.generate(spec(textual_inversions=(TextualInversionSpec("absent"),)))
    assert result.metadata == [Metadata("ti", "download_failed", "absent")]
    assert ("ti", "absent") in resolver.calls


def test_loaded_adapters_are_not_resolved_again(engine: Engine, resolver: Resolver) -> None:
    engine.generate(spec(loras=(LoraSpec("style-a"),), textual_inversions=(TextualInversionSpec("emb"),)))
    before = len(resolver.calls)
    engine.generate(spec(loras=(LoraSpec("style-a"),), textual_inversions=(TextualInversionSpec("emb"),)))
    assert len(resolver.calls) == before
