"""Prompt handling: ``###`` split, dynamic choices, weight syntax, chunked encoding and clip_skip."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from openhorde.worker.generation.prompts import (
    encode_prompts,
    parse_weights,
    resolve_dynamic,
    supports_own_encoding,
)
from openhorde.worker.generation.spec import split_prompt
from openhorde.worker.models.tiny import build_tiny_pipeline


@pytest.fixture(scope="module")
def pipe() -> Any:
    return build_tiny_pipeline()


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat", ("a cat", "")),
        ("a cat###blurry", ("a cat", "blurry")),
        ("a cat ### blurry ### ignored", ("a cat", "blurry")),
        ("###only negative", ("", "only negative")),
    ],
)
def test_split_prompt(prompt: str, expected: tuple[str, str]) -> None:
    assert split_prompt(prompt) == expected


def test_dynamic_prompts_are_deterministic_per_seed_and_vary_across_seeds() -> None:
    text = "a {red|green|blue} {cat|dog|{tiny|huge} bird}"
    assert resolve_dynamic(text, 3) == resolve_dynamic(text, 3)
    results = {resolve_dynamic(text, seed) for seed in range(40)}
    assert len(results) > 3
    assert all("{" not in result and "|" not in result for result in results)
    assert resolve_dynamic("no choices here", 1) == "no choices here"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a plain prompt", [("a plain prompt", 1.0)]),
        ("a (red:1.5) cat", [("a ", 1.0), ("red", 1.5), (" cat", 1.0)]),
        ("(big)", [("big", 1.1)]),
        ("[small]", [("small", 1 / 1.1)]),
        ("((x))", [("x", pytest.approx(1.21))]),
        ("((x:2) y:0.5)", [("x", 1.0), (" y", 0.5)]),
        ("\\(literal\\)", [("(literal)", 1.0)]),
        ("a:b ratio 16:9", [("a:b ratio 16:9", 1.0)]),
        ("(embedding:name:1.2)", [("embedding:name", 1.2)]),
        ("unclosed (bracket", [("unclosed ", 1.0), ("bracket", 1.1)]),
        ("stray) text", [("stray) text", 1.0)]),
        ("", [("", 1.0)]),
    ],
)
def test_parse_weights(text: str, expected: list[tuple[str, float]]) -> None:
    assert parse_weights(text) == expected


def test_clip_skip_one_matches_the_pipelines_own_encoding(pipe: Any) -> None:
    with torch.inference_mode():
        positive, negative = pipe.encode_prompt("a photo of a cat", "cpu", 1, True, "blurry")
        mine = encode_prompts(pipe, "a photo of a cat", "blurry", clip_skip=1, guidance=True)
    assert mine.prompt_embeds is not None and mine.negative_prompt_embeds is not None
    assert torch.allclose(mine.prompt_embeds, positive, atol=1e-6)
    assert torch.allclose(mine.negative_prompt_embeds, negative, atol=1e-6)


def test_clip_skip_two_uses_the_penultimate_layer(pipe: Any) -> None:
    ids = pipe.tokenizer("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.inference_mode():
        hidden = pipe.text_encoder(ids, output_hidden_states=True).hidden_states
        expected = pipe.text_encoder.final_layer_norm(hidden[-2])
        mine = encode_prompts(pipe, "a cat", "", clip_skip=2, guidance=False)
    assert mine.negative_prompt_embeds is None and mine.prompt_embeds is not None
    assert torch.allclose(mine.prompt_embeds, expected, atol=1e-6)


def test_long_prompts_are_encoded_in_chunks_padded_to_equal_length(pipe: Any) -> None:
    long = " ".join(["cat"] * 100)
    with torch.inference_mode():
        inputs = encode_prompts(pipe, long, "short", clip_skip=1, guidance=True)
        tail_changed = encode_prompts(pipe, long + " dog", "short", clip_skip=1, guidance=True)
    embeds, changed = inputs.prompt_embeds, tail_changed.prompt_embeds
    assert embeds is not None and changed is not None and inputs.negative_prompt_embeds is not None
    assert embeds.shape == (1, 154, 32)
    assert inputs.negative_prompt_embeds.shape == (1, 154, 32)
    assert not torch.equal(embeds[:, 77:], changed[:, 77:])
    assert torch.equal(embeds[:, :77], changed[:, :77])


def test_weights_scale_only_their_tokens(pipe: Any) -> None:
    with torch.inference_mode():
        plain = encode_prompts(pipe, "a red cat", "", 1, False).prompt_embeds
        weighted = encode_prompts(pipe, "a red (cat:1.5)", "", 1, False).prompt_embeds
        neutral = encode_prompts(pipe, "a red (cat:1.0)", "", 1, False).prompt_embeds
    assert plain is not None and weighted is not None and neutral is not None
    assert torch.equal(plain, neutral)
    changed = (plain - weighted).abs().amax(dim=-1)[0]
    assert changed[3] > 0  # bos, "a", "red", "cat": only "cat" moves
    assert torch.all(changed[:3] == 0) and torch.all(changed[4:] == 0)


def test_pipelines_without_both_clip_encoders_get_plain_text() -> None:
    """An SDXL refiner has only the second encoder: diffusers encodes its prompts, from text without weights."""

    class SecondEncoderOnly:
        tokenizer = text_encoder = None
        tokenizer_2 = text_encoder_2 = object()

    assert not supports_own_encoding(SecondEncoderOnly())
    inputs = encode_prompts(SecondEncoderOnly(), "a (cat:1.3)", "ugly", clip_skip=2, guidance=True)
    assert inputs.kwargs() == {"prompt": "a cat", "negative_prompt": "ugly", "clip_skip": 1}
