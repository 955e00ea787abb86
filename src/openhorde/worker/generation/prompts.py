"""Horde prompt text → text-encoder embeddings: ``###`` negatives, ``{a|b}`` choices, ``(word:1.2)`` weights.

diffusers tokenises prompts verbatim and cuts them at 77 tokens. Horde prompts carry A1111/ComfyUI weight syntax
and are often longer, so SD1/2-style pipelines get embeddings computed here (SDXL ones in ``sdxl_prompts``, from
this module's helpers): 75-token chunks encoded separately and concatenated (as A1111 does), per-token weights,
and clip_skip done by hand because diffusers' own clip_skip reaches for ``text_encoder.text_model``, which
transformers ≥ 5.6 no longer has.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

import torch

CHUNK_TOKENS = 75
ROUND_BRACKET_WEIGHT = 1.1

_CHOICE = re.compile(r"\{([^{}]*)\}")
# Escaped brackets, opening/closing brackets, an explicit ":weight)" closer, or a run of plain text.
_WEIGHT_TOKEN = re.compile(r"\\[\\()\[\]]|\(|\[|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)|\)|\]|[^\\()\[\]:]+|:")


def resolve_dynamic(text: str, seed: int) -> str:
    """Replace each ``{a|b|c}`` with one option, innermost first, the same way for the same seed."""
    rng = random.Random(seed)
    while True:
        replaced = _CHOICE.sub(lambda match: rng.choice(match.group(1).split("|")), text)
        if replaced == text:
            return text
        text = replaced


def parse_weights(text: str) -> list[tuple[str, float]]:
    """A1111 emphasis: ``(x:1.3)`` sets a weight, ``(x)`` multiplies by 1.1, ``[x]`` divides by 1.1; nesting multiplies.

    Returns the text as fragments with their weights, brackets removed (``\\(`` keeps a literal bracket);
    an unclosed bracket applies to the end of the text.
    """
    fragments: list[list[Any]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for fragment in fragments[start:]:
            fragment[1] *= factor

    for match in _WEIGHT_TOKEN.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            fragments.append([token[1:], 1.0])
        elif token == "(":
            round_open.append(len(fragments))
        elif token == "[":
            square_open.append(len(fragments))
        elif weight is not None and round_open:
            scale(round_open.pop(), float(weight))
        elif token.startswith(":") and weight is not None:
            fragments.append([token, 1.0])  # ":1.2)" with nothing to close is plain text
        elif token == ")" and round_open:
            scale(round_open.pop(), ROUND_BRACKET_WEIGHT)
        elif token == "]" and square_open:
            scale(square_open.pop(), 1 / ROUND_BRACKET_WEIGHT)
        else:
            fragments.append([token, 1.0])
    for start in round_open:
        scale(start, ROUND_BRACKET_WEIGHT)
    for start in square_open:
        scale(start, 1 / ROUND_BRACKET_WEIGHT)
    return _merge(fragments)


def _merge(fragments: list[list[Any]]) -> list[tuple[str, float]]:
    merged: list[tuple[str, float]] = []
    for text, weight in fragments:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + text, weight)
        elif text:
            merged.append((text, weight))
    return merged or [("", 1.0)]


@dataclass
class PromptInputs:
    """What the pipeline call gets for its text: precomputed embeddings, or plain strings for its own encoder.

    The pooled embeddings are SDXL's (its second encoder's projected output); SD1/2 pipelines take none.
    """

    prompt_embeds: torch.Tensor | None = None
    negative_prompt_embeds: torch.Tensor | None = None
    text: dict[str, Any] = field(default_factory=dict)
    pooled_prompt_embeds: torch.Tensor | None = None
    negative_pooled_prompt_embeds: torch.Tensor | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the diffusers pipeline call."""
        if self.prompt_embeds is None:
            return dict(self.text)
        tensors = {
            "prompt_embeds": self.prompt_embeds,
            "negative_prompt_embeds": self.negative_prompt_embeds,
            "pooled_prompt_embeds": self.pooled_prompt_embeds,
            "negative_pooled_prompt_embeds": self.negative_pooled_prompt_embeds,
        }
        return {name: tensor for name, tensor in tensors.items() if tensor is not None}


def is_sdxl_style(pipe: Any) -> bool:
    """Two CLIP encoders with their tokenizers (SDXL and its fine-tunes): encoded by ``sdxl_prompts``."""
    return all(
        getattr(pipe, part, None) is not None for part in ("tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2")
    )


def supports_own_encoding(pipe: Any) -> bool:
    """SD1/SD2-style pipelines (one CLIP encoder) and SDXL-style ones (two) are encoded here; others get text."""
    if is_sdxl_style(pipe):
        return True
    return (
        getattr(pipe, "tokenizer", None) is not None
        and getattr(pipe, "text_encoder", None) is not None
        and getattr(pipe, "text_encoder_2", None) is None
    )


def encode_prompts(pipe: Any, positive: str, negative: str, clip_skip: int, guidance: bool) -> PromptInputs:
    """Embeddings for a job's prompt pair (``negative`` only when ``guidance`` is on), same length for both.

    ``clip_skip`` is the horde value: 1 is the last layer, 2 the penultimate. Pipelines this module cannot
    encode get the text with the weight syntax removed, and their own clip_skip.
    """
    if is_sdxl_style(pipe):
        # Imported here: sdxl_prompts builds on this module's tokenising and weighting helpers.
        from openhorde.worker.generation.sdxl_prompts import encode_sdxl_prompts

        return encode_sdxl_prompts(pipe, positive, negative, clip_skip, guidance)
    if not supports_own_encoding(pipe):
        return _text_inputs(positive, negative, clip_skip, guidance)
    prompts = [positive, negative] if guidance else [positive]
    tokens = special_tokens(pipe.tokenizer)
    token_rows = [tokenize_weighted(pipe, pipe.tokenizer, text) for text in prompts]
    chunk_count = max(chunks_needed(len(ids)) for ids, _ in token_rows)
    ids, weights = chunked(token_rows, chunk_count, tokens)
    embeddings = _encode_chunks(pipe.text_encoder, ids, weights, clip_skip, tokens)
    joined = join_chunks(embeddings, len(prompts), chunk_count)
    return PromptInputs(joined[0:1], joined[1:2] if guidance else None)


def join_chunks(embeddings: torch.Tensor, prompt_count: int, chunk_count: int) -> torch.Tensor:
    """Rows are chunks, prompt by prompt: join each prompt's chunks into one long sequence."""
    width = embeddings.shape[-1]
    return embeddings.reshape(prompt_count, chunk_count * embeddings.shape[1], width)


def _text_inputs(positive: str, negative: str, clip_skip: int, guidance: bool) -> PromptInputs:
    def plain(text: str) -> str:
        return "".join(fragment for fragment, _ in parse_weights(text))

    text: dict[str, Any] = {"prompt": plain(positive)}
    if guidance:
        text["negative_prompt"] = plain(negative)
    if clip_skip > 1:
        text["clip_skip"] = clip_skip - 1  # diffusers counts layers skipped, the horde counts from the end
    return PromptInputs(text=text)


def tokenize_weighted(pipe: Any, tokenizer: Any, text: str) -> tuple[list[int], list[float]]:
    """Token ids (no specials) and one weight per token, as ``tokenizer`` (one of the pipeline's) splits them."""
    if hasattr(pipe, "maybe_convert_prompt"):
        # Multi-vector textual inversions: "<tok>" → "<tok> <tok>_1 …", one token per vector.
        text = pipe.maybe_convert_prompt(text, tokenizer)
    fragments = parse_weights(text)
    encoded = tokenizer([fragment for fragment, _ in fragments], add_special_tokens=False, verbose=False)
    ids: list[int] = []
    weights: list[float] = []
    for fragment_ids, (_, weight) in zip(encoded.input_ids, fragments, strict=True):
        ids.extend(fragment_ids)
        weights.extend([weight] * len(fragment_ids))
    return ids, weights


def chunks_needed(token_count: int) -> int:
    """How many 75-token chunks a prompt of ``token_count`` tokens takes (at least one)."""
    return max(1, -(-token_count // CHUNK_TOKENS))


def special_tokens(tokenizer: Any) -> tuple[int, int, int]:
    """Start, end and padding token ids (padding falls back to the end token, as CLIP for SD1)."""
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    return tokenizer.bos_token_id, eos, pad


def chunked(
    rows: list[tuple[list[int], list[float]]], chunk_count: int, tokens: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each prompt as ``chunk_count`` rows of ``bos + 75 tokens + eos``, padded the way the tokenizer pads.

    A short prompt thus gives exactly the ids the pipeline's own ``encode_prompt`` would use.
    """
    bos, eos, pad = tokens
    all_ids: list[list[int]] = []
    all_weights: list[list[float]] = []
    for ids, weights in rows:
        for index in range(chunk_count):
            part = ids[index * CHUNK_TOKENS : (index + 1) * CHUNK_TOKENS]
            part_weights = weights[index * CHUNK_TOKENS : (index + 1) * CHUNK_TOKENS]
            filler = CHUNK_TOKENS - len(part)
            all_ids.append([bos, *part, eos, *([pad] * filler)])
            all_weights.append([1.0, *part_weights, 1.0, *([1.0] * filler)])
    return torch.tensor(all_ids), torch.tensor(all_weights)


def final_layer_norm(text_encoder: Any) -> Any:
    """The encoder's output LayerNorm, wherever this transformers version keeps it."""
    return getattr(text_encoder, "text_model", text_encoder).final_layer_norm


def _encode_chunks(
    text_encoder: Any, ids: torch.Tensor, weights: torch.Tensor, clip_skip: int, tokens: tuple[int, int, int]
) -> torch.Tensor:
    """All chunks in one text-encoder call, clip_skip applied (then the final LayerNorm), then token weights."""
    skip = max(1, clip_skip)
    weighted = is_weighted(weights)
    output = run_encoder(text_encoder, with_empty_row(ids, weighted, tokens), tokens, skip > 1)
    if skip > 1:
        hidden = output.hidden_states
        embeddings = final_layer_norm(text_encoder)(hidden[-min(skip, len(hidden) - 1)])
    else:
        embeddings = output[0]
    return apply_weights(embeddings, weights, weighted).to(dtype=text_encoder.dtype)


def is_weighted(weights: torch.Tensor) -> bool:
    """Some token has a weight other than 1 (only then is the empty prompt encoded for reference)."""
    return bool((weights != 1.0).any())


def with_empty_row(ids: torch.Tensor, weighted: bool, tokens: tuple[int, int, int]) -> torch.Tensor:
    """The chunk rows, plus one empty-prompt row at the end when weights need it as their reference."""
    if not weighted:
        return ids
    bos, eos, pad = tokens
    return torch.cat([ids, torch.tensor([[bos, eos, *([pad] * CHUNK_TOKENS)]])])


def run_encoder(text_encoder: Any, ids: torch.Tensor, tokens: tuple[int, int, int], hidden_states: bool) -> Any:
    """One text-encoder call over all rows, with the attention mask the encoder's config asks for."""
    device = text_encoder.device
    mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        mask = _attention_mask(ids, tokens[1]).to(device)
    return text_encoder(ids.to(device), attention_mask=mask, output_hidden_states=hidden_states)


def apply_weights(embeddings: torch.Tensor, weights: torch.Tensor, weighted: bool) -> torch.Tensor:
    """Token weights applied to the rows; with ``weighted``, the last row is the empty prompt's and is dropped.

    Weights work as in ComfyUI (so as in reGen): each token's embedding is moved away from (or towards) the
    embedding an empty prompt has at the same position, ``empty + (z - empty) * weight``. A1111's
    "multiply, then restore the mean" is unstable when the mean is near zero, as after a plain LayerNorm.
    """
    if not weighted:
        return embeddings
    empty, embeddings = embeddings[-1:], embeddings[:-1]
    scale = weights.to(device=embeddings.device, dtype=embeddings.dtype).unsqueeze(-1)
    # Unweighted tokens keep their exact embedding ((z - e) + e is not always z in floating point).
    return torch.where(scale != 1.0, empty + (embeddings - empty) * scale, embeddings)


def _attention_mask(ids: torch.Tensor, end_token: int) -> torch.Tensor:
    """1 up to and including each row's first end token, 0 on the padding after it (as the tokenizer's mask)."""
    is_end = (ids == end_token).int()
    first_end = torch.argmax(is_end, dim=1, keepdim=True)
    return (torch.arange(ids.shape[1]).unsqueeze(0) <= first_end).long()
