"""The built-in tiny model and the offline CLIP tokenizer it uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from openhorde.worker.models.tiny import build_tiny_pipeline
from openhorde.worker.models.tokenizer import CLIP_VOCAB_SIZE, clip_tokenizer

# Builds and runs diffusion pipelines (tiny models) on the CPU: seconds per test.
pytestmark = pytest.mark.generation


def test_the_tokenizer_gives_clip_token_ids() -> None:
    tokenizer = clip_tokenizer()
    assert len(tokenizer) == CLIP_VOCAB_SIZE
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_sd2_style_tokenizer_pads_with_the_exclamation_mark() -> None:
    ids = clip_tokenizer("!")("a cat", padding="max_length", max_length=6).input_ids
    assert ids == [49406, 320, 2368, 49407, 0, 0]


def test_the_tiny_pipeline_is_the_same_on_every_build() -> None:
    first, second = build_tiny_pipeline(), build_tiny_pipeline()
    for name in ("unet", "vae", "text_encoder"):
        left, right = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert all(torch.equal(left[key], right[key]) for key in left)


def test_the_tiny_pipeline_generates_the_requested_size() -> None:
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        "a cat", num_inference_steps=2, width=64, height=128, generator=torch.Generator().manual_seed(3)
    ).images
    assert images[0].size == (64, 128)
    assert np.asarray(images[0]).std() > 0
