"""SDXL prompts encoded by the engine: both encoders, weights, chunks past 77 tokens, clip_skip, pooled output."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from openhorde.worker.generation.prompts import PromptInputs, encode_prompts
from openhorde.worker.models.tiny import TINY_SDXL_TEXT_DIM, build_tiny_sdxl_pipeline

from .conftest import NUMPY_COPY_WARNING

WIDTH = 2 * TINY_SDXL_TEXT_DIM
"""Each token's embedding: the first encoder's hidden state, then the second's."""


@pytest.fixture(scope="module")
def pipe() -> Any:
    return build_tiny_sdxl_pipeline()


def _encode(pipe: Any, positive: str, negative: str = "", clip_skip: int = 1, guidance: bool = False) -> PromptInputs:
    with torch.inference_mode():
        return encode_prompts(pipe, positive, negative, clip_skip, guidance)


def test_clip_skip_two_matches_diffusers_own_sdxl_encoding(pipe: Any) -> None:
    """diffusers reads SDXL's penultimate layer; horde clip_skip 2 is that layer, so a short prompt matches."""
    with torch.inference_mode():
        positive, negative, pooled, negative_pooled = pipe.encode_prompt(
            "a photo of a cat",
            device="cpu",
            num_images_per_prompt=1,
            do_classifier_free_guidance=True,
            negative_prompt="blurry",
        )
    ours = _encode(pipe, "a photo of a cat", "blurry", clip_skip=2, guidance=True)
    assert set(ours.kwargs()) == {
        "prompt_embeds",
        "negative_prompt_embeds",
        "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
    }
    assert ours.prompt_embeds is not None and ours.prompt_embeds.shape == (1, 77, WIDTH)
    assert torch.allclose(ours.prompt_embeds, positive, atol=1e-6)
    assert torch.allclose(ours.negative_prompt_embeds, negative, atol=1e-6)  # type: ignore[arg-type]
    assert torch.allclose(ours.pooled_prompt_embeds, pooled, atol=1e-6)  # type: ignore[arg-type]
    assert torch.allclose(ours.negative_pooled_prompt_embeds, negative_pooled, atol=1e-6)  # type: ignore[arg-type]


def test_clip_skip_one_reads_the_last_layer_without_final_layer_norm(pipe: Any) -> None:
    ids = pipe.tokenizer("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    ids_2 = pipe.tokenizer_2("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.inference_mode():
        first = pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-1]
        second = pipe.text_encoder_2(ids_2, output_hidden_states=True).hidden_states[-1]
    last = _encode(pipe, "a cat", clip_skip=1).prompt_embeds
    penultimate = _encode(pipe, "a cat", clip_skip=2).prompt_embeds
    assert last is not None and penultimate is not None
    assert torch.allclose(last, torch.cat([first, second], dim=-1), atol=1e-6)
    assert not torch.allclose(last, penultimate, atol=1e-3)


def test_clip_skip_leaves_the_pooled_embedding_alone(pipe: Any) -> None:
    """The pooled embedding is the projected final output whatever layer the hidden states come from (ComfyUI)."""
    one, three = _encode(pipe, "a cat", clip_skip=1), _encode(pipe, "a cat", clip_skip=3)
    assert one.pooled_prompt_embeds is not None and three.pooled_prompt_embeds is not None
    assert torch.equal(one.pooled_prompt_embeds, three.pooled_prompt_embeds)


def test_weights_move_only_their_tokens_in_both_encoders(pipe: Any) -> None:
    plain = _encode(pipe, "a red cat").prompt_embeds
    weighted = _encode(pipe, "a red (cat:1.5)").prompt_embeds
    neutral = _encode(pipe, "a red (cat:1.0)").prompt_embeds
    assert plain is not None and weighted is not None and neutral is not None
    assert torch.equal(plain, neutral)
    difference = (plain - weighted).abs()[0]
    for half in (difference[:, :TINY_SDXL_TEXT_DIM], difference[:, TINY_SDXL_TEXT_DIM:]):
        changed = half.amax(dim=-1)
        # bos, "a", "red", "cat": only "cat" moves (the others by float rounding at most, which varies by run)
        assert changed[3] > 1e-3
        assert torch.all(changed[:3] < 1e-5) and torch.all(changed[4:] < 1e-5)


def test_long_prompts_keep_their_tail_and_pool_the_first_chunk(pipe: Any) -> None:
    long = " ".join(["cat"] * 100)
    inputs = _encode(pipe, long, "short", guidance=True)
    tail_changed = _encode(pipe, long + " dog", "short", guidance=True)
    embeds, changed = inputs.prompt_embeds, tail_changed.prompt_embeds
    assert embeds is not None and changed is not None and inputs.negative_prompt_embeds is not None
    assert embeds.shape == inputs.negative_prompt_embeds.shape == (1, 154, WIDTH)
    assert not torch.equal(embeds[:, 77:], changed[:, 77:])
    assert torch.equal(embeds[:, :77], changed[:, :77])
    assert torch.equal(inputs.pooled_prompt_embeds, tail_changed.pooled_prompt_embeds)  # type: ignore[arg-type]
    assert inputs.pooled_prompt_embeds is not None and inputs.pooled_prompt_embeds.shape == (1, TINY_SDXL_TEXT_DIM)


@pytest.mark.generation
@pytest.mark.filterwarnings(NUMPY_COPY_WARNING)
def test_the_sdxl_pipeline_generates_from_our_embeddings(pipe: Any) -> None:
    def generate(prompt: str) -> torch.Tensor:
        inputs = _encode(pipe, prompt, "blurry", guidance=True)
        with torch.inference_mode():
            images = pipe(
                **inputs.kwargs(),
                num_inference_steps=2,
                width=64,
                height=64,
                output_type="pt",
                generator=torch.Generator().manual_seed(1),
            ).images
        return torch.as_tensor(images)

    plain, weighted = generate("a photo of a cat"), generate("a photo of a (cat:1.6)")
    assert plain.shape == (1, 3, 64, 64)
    assert plain.std() > 0
    assert not torch.equal(plain, weighted)
