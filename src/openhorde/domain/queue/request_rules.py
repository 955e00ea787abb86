"""What a new request must meet before it is priced and queued: the prompt's and the parameters' limits, a
ControlNet request's source, known models, and the upfront-kudos rule with the downgrade that avoids it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from openhorde.domain import catalogue, post_processors
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos.pricing import accurate_steps
from openhorde.errors import (
    ControlNetInpaintingMismatch,
    ControlNetSourceMissing,
    InvalidPromptSize,
    MissingPrompt,
    TooManyLoras,
    TooManyTIs,
    TooManyUpscalers,
    UnsupportedModel,
)
from openhorde.storage.store import Store

if TYPE_CHECKING:
    from openhorde.domain.queue.requests import NewRequest

MAX_PROMPT_WORDS = 7500
"""The AI Horde's limit on a prompt, in whitespace-separated words."""
MAX_PROMPT_CHARS = 20_000
"""Ours, beside the word limit: 7,500 words of ordinary text fit, and one "word" of a million characters does not."""
MAX_LORAS = 5
MAX_TIS = 20
CONTROLNET_MAX_STEPS = 40
"""The AI Horde caps a ControlNet request's steps at this, silently."""
UPFRONT_MAX_STEPS = 50
"""Requests with more accurate steps than this must be paid for upfront."""
UPFRONT_MAX_PIXELS = 1024 * 1024
"""Requests larger than this must be paid for upfront."""
DOWNGRADE_STEPS = 50


def check_prompt(prompt: str) -> None:
    """A prompt that is not blank and within the word and character limits."""
    if not prompt.strip():
        raise MissingPrompt()
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidPromptSize(f"Prompts are limited to {MAX_PROMPT_CHARS} characters.")
    if len(prompt.split()) > MAX_PROMPT_WORDS:
        raise InvalidPromptSize(f"Prompts are limited to {MAX_PROMPT_WORDS} words.")


def check_params(params: dict[str, Any]) -> None:
    """At most ``MAX_LORAS`` LoRAs, ``MAX_TIS`` textual inversions and one upscaler."""
    if len(params.get("loras") or ()) > MAX_LORAS:
        raise TooManyLoras()
    if len(params.get("tis") or ()) > MAX_TIS:
        raise TooManyTIs()
    if sum(1 for name in params.get("post_processing") or () if name in post_processors.UPSCALERS) > 1:
        raise TooManyUpscalers()


def check_controlnet(new: NewRequest) -> None:
    """A ControlNet request has a source image (its control image) and is not a painting; steps at most 40."""
    if not new.params.get("control_type"):
        return
    if new.source_image is None:
        raise ControlNetSourceMissing()
    if new.source_processing in ("inpainting", "outpainting"):
        raise ControlNetInpaintingMismatch()
    new.params["steps"] = min(new.params["steps"], CONTROLNET_MAX_STEPS)  # silently, as the AI Horde


async def check_models(store: Store, ctx: HordeContext, models: list[str]) -> None:
    """Models the catalogue knows (any, when the horde allows custom models)."""
    if not models or ctx.settings.queue.allow_custom_models:
        return
    unknown = sorted(set(models) - await catalogue.known_names(store, models, ctx.catalogue))
    if unknown:
        raise UnsupportedModel(f"Unknown model(s): {', '.join(unknown)}. See /api/v2/status/models for the catalogue.")


def needs_upfront_kudos(new: NewRequest, params: dict[str, Any]) -> bool:
    """Whether the reference's upfront-kudos rules apply: fast workers only, many steps or a large image."""
    steps = accurate_steps(params["steps"], params["sampler_name"])
    return (
        (not new.slow_workers) or steps > UPFRONT_MAX_STEPS or params["width"] * params["height"] > UPFRONT_MAX_PIXELS
    )


def downgrade(params: dict[str, Any]) -> dict[str, Any]:
    """Params shrunk to what needs no upfront kudos: area within 1024², sides multiples of 64, fewer steps."""
    smaller = dict(params)
    area = params["width"] * params["height"]
    if area > UPFRONT_MAX_PIXELS:
        scale = (UPFRONT_MAX_PIXELS / area) ** 0.5
        smaller["width"] = max(64, int(params["width"] * scale) // 64 * 64)
        smaller["height"] = max(64, int(params["height"] * scale) // 64 * 64)
    if accurate_steps(params["steps"], params["sampler_name"]) > UPFRONT_MAX_STEPS:
        factor = 2 if accurate_steps(2, params["sampler_name"]) == 4 else 1
        smaller["steps"] = DOWNGRADE_STEPS // factor
    return smaller
