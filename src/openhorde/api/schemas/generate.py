"""Bodies of ``/generate/async``, ``/generate/check`` and ``/generate/status``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from openhorde.api.schemas.common import MAX_LIST_ITEMS, ModelName, ResponseModel, WireModel, WorkerId
from openhorde.domain.queue.request_rules import MAX_PROMPT_CHARS, MAX_PROMPT_WORDS

Sampler = Literal[
    "k_lms",
    "k_heun",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
    "k_dpm_fast",
    "k_dpm_adaptive",
    "k_dpmpp_2s_a",
    "k_dpmpp_2m",
    "dpmsolver",
    "k_dpmpp_sde",
    "DDIM",
    "lcm",
]
PostProcessor = Literal[
    "GFPGAN",
    "RealESRGAN_x4plus",
    "RealESRGAN_x2plus",
    "RealESRGAN_x4plus_anime_6B",
    "NMKD_Siax",
    "4x_AnimeSharp",
    "CodeFormers",
    "strip_background",
]
ControlType = Literal["canny", "hed", "depth", "normal", "openpose", "seg", "scribble", "fakescribbles", "hough"]
SourceProcessing = Literal["img2img", "inpainting", "outpainting"]

MAX_EXTRA_TEXTS = 10
"""Extra texts in one request (the ``qr_code`` workflow uses one)."""
MAX_EXTRA_TEXT_CHARS = 3000
"""One extra text: room for the most a QR code holds (2,953 bytes)."""
MAX_EXTRA_TEXT_REFERENCE_CHARS = 100
"""An extra text's reference, a short tag such as ``qr_code``."""
MAX_SEED_CHARS = 256
"""A seed's text. Digits are read as a number, and Python refuses to read more than 640 to 4,300 digits (its
``int_max_str_digits``): a longer seed is refused with 400 instead of reaching that limit."""
MAX_SPECIAL_KEYS = 50
"""Keys of ``params.special``, a special user's payload passed on to the worker."""
MAX_HYPERNETWORKS = 5
"""Hypernetworks in one request, as many as LoRAs (each one runs on every attention layer it has a size for)."""
MAX_HYPERNETWORK_STRENGTH = 5.0
"""A hypernetwork's strength is at most this far from 0, the bounds of a LoRA's strengths."""


class LoraInput(WireModel):
    name: str = Field(min_length=1, max_length=255)
    model: float = Field(default=1.0, ge=-5.0, le=5.0)
    clip: float = Field(default=1.0, ge=-5.0, le=5.0)
    inject_trigger: str | None = Field(default=None, min_length=1, max_length=30)
    is_version: bool = False


class TextualInversionInput(WireModel):
    name: str = Field(min_length=1, max_length=255)
    inject_ti: Literal["prompt", "negprompt"] | None = None
    strength: float = Field(default=1.0, ge=-5.0, le=5.0)


class HypernetworkInput(WireModel):
    """One hypernetwork of ``params.hypernetworks`` (an OpenHorde extension)."""

    name: str = Field(min_length=1, max_length=255, description="The hypernetwork's name in the worker's catalogue.")
    strength: float = Field(
        default=1.0,
        ge=-MAX_HYPERNETWORK_STRENGTH,
        le=MAX_HYPERNETWORK_STRENGTH,
        description="How much of the hypernetwork is added to the attention layers' keys and values "
        "(A1111's multiplier): 0 leaves the model as it is, 1 applies it as trained.",
    )


class ExtraText(WireModel):
    text: str = Field(max_length=MAX_EXTRA_TEXT_CHARS)
    reference: str = Field(max_length=MAX_EXTRA_TEXT_REFERENCE_CHARS)


class ImageParams(WireModel):
    """``params`` of an image request. Defaults follow the swagger description (cfg 7.5, karras off)."""

    sampler_name: Sampler = "k_euler_a"
    cfg_scale: float = Field(default=7.5, ge=0, le=100)
    denoising_strength: float | None = Field(default=None, ge=0.01, le=1.0)
    hires_fix_denoising_strength: float | None = Field(default=None, ge=0.01, le=1.0)
    seed: str | None = Field(default=None, max_length=MAX_SEED_CHARS)
    height: int = Field(default=512, ge=64, le=3072, multiple_of=64)
    width: int = Field(default=512, ge=64, le=3072, multiple_of=64)
    seed_variation: int | None = Field(default=None, ge=1, le=1000)
    post_processing: list[PostProcessor] = Field(default_factory=list)
    post_processing_order: Literal["facefixers_first", "upscalers_first", "custom"] | None = Field(
        default=None,
        description="horde-sdk's field: the order post-processors run in (custom: as listed). Workers default to "
        "facefixers_first.",
    )
    karras: bool = False
    tiling: bool = False
    hires_fix: bool = False
    clip_skip: int | None = Field(default=None, ge=1, le=12)
    control_type: ControlType | None = None
    image_is_control: bool = False
    return_control_map: bool = False
    facefixer_strength: float | None = Field(default=None, ge=0, le=1.0)
    loras: list[LoraInput] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    tis: list[TextualInversionInput] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    hypernetworks: list[HypernetworkInput] | None = Field(
        default=None,
        max_length=MAX_HYPERNETWORKS,
        description="OpenHorde extension (the AI Horde has no such field): AUTOMATIC1111-format hypernetworks "
        f"applied to the model's attention keys and values, at most {MAX_HYPERNETWORKS}, each with a strength "
        f"from -{MAX_HYPERNETWORK_STRENGTH:g} to {MAX_HYPERNETWORK_STRENGTH:g}. Only workers that declare "
        "allow_hypernetworks in their pop serve such a request.",
    )
    special: dict[str, Any] | None = Field(default=None, max_length=MAX_SPECIAL_KEYS)
    extra_texts: list[ExtraText] | None = Field(default=None, max_length=MAX_EXTRA_TEXTS)
    workflow: Literal["qr_code"] | None = None
    transparent: bool = False
    steps: int = Field(default=30, ge=1, le=500)
    n: int = Field(default=1, ge=1, le=20)

    @field_validator("cfg_scale")
    @classmethod
    def _two_decimals(cls, value: float) -> float:
        if round(value, 2) != value:
            raise ValueError("cfg_scale may have at most 2 decimals")
        return value

    @field_validator("post_processing")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("post_processing items must be unique")
        return value

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class GenerationInput(WireModel):
    """Body of ``POST /generate/async`` (``GenerationInputStable``)."""

    prompt: str = Field(
        min_length=1,
        description=f"At most {MAX_PROMPT_WORDS:,} words (the AI Horde's limit) and {MAX_PROMPT_CHARS:,} characters "
        "(OpenHorde's); a longer prompt is refused with rc InvalidPromptSize.",
    )
    params: ImageParams = Field(default_factory=ImageParams)
    nsfw: bool = False
    trusted_workers: bool = False
    slow_workers: bool = True
    extra_slow_workers: bool = False
    censor_nsfw: bool = False
    workers: list[WorkerId] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    worker_blacklist: bool = False
    models: list[ModelName] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    source_image: str | None = None
    source_processing: SourceProcessing = "img2img"
    source_mask: str | None = None
    r2: bool = True
    shared: bool = False
    replacement_filter: bool = True
    dry_run: bool = False
    disable_batching: bool = False
    allow_downgrade: bool = False
    webhook: str | None = Field(default=None, min_length=10, max_length=1024, pattern=r"^https?://")
    gallery: bool = Field(
        default=False,
        description="OpenHorde: keep each finished image in your gallery (GET /api/v2/gallery); registered users.",
    )
    style: str | None = Field(
        default=None,
        min_length=3,
        max_length=1024,
        description="A style's or collection's id or name (`user#id::style::name`); its prompt template, params "
        "and models replace the request's (the request keeps its `n`, and its size where the style sets none).",
    )

    @field_validator("source_image", "source_mask", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class RequestWarning(ResponseModel):
    code: str
    message: str


class RequestAsync(ResponseModel):
    """Answer of ``POST /generate/async``; ``kudos`` is the whole request's price.

    The reference's schema types ``kudos`` as an integer (its server sends ``round(...)``), so typed
    clients may reject a fraction; it is rounded to whole kudos here. The dry run gives the exact price.
    """

    id: str
    kudos: int
    message: str | None = None
    warnings: list[RequestWarning] | None = None


class ResolvedStyle(ResponseModel):
    id: str
    name: str


class ResolvedRequest(ResponseModel):
    """A styled request as it would run: the style's template filled in, its params and models."""

    prompt: str
    params: dict[str, Any]
    models: list[str]
    style: ResolvedStyle
    negative_prompt: str


class DryRunResult(ResponseModel):
    kudos: float
    resolved: ResolvedRequest | None = None


class RequestStatusCheck(ResponseModel):
    finished: int
    processing: int
    restarted: int
    waiting: int
    done: bool
    faulted: bool
    wait_time: int
    queue_position: int
    kudos: int = Field(
        description="The kudos this request has consumed so far, rounded to whole kudos as the reference server "
        "sends them (typed clients such as horde-client reject a fraction)."
    )
    is_possible: bool = Field(
        description="False when no live worker can serve this request (every matching rule applied) and nothing "
        "of it is in progress; it becomes true again as soon as one can."
    )
    eligible_workers: int = Field(
        default=0,
        description="How many live workers pass every matching rule for this request (counted again "
        "every few seconds).",
    )
    eligible_worker_threads: int = Field(default=0, description="The threads those workers advertise, busy or not.")
    might_stall: bool = Field(
        default=False,
        description="True while nothing of the request is in progress and the work ahead of it, at the speed of "
        "its eligible workers alone, may outlast its time in the queue (or no worker can serve it).",
    )
    fault_reason: str | None = Field(
        default=None, description="OpenHorde: why a faulted request failed (null unless faulted)."
    )


class GenerationMetadata(ResponseModel):
    type: str
    value: str
    ref: str | None = None


class GenerationStable(ResponseModel):
    worker_id: str
    worker_name: str
    model: str
    state: Literal["ok", "censored"]
    img: str
    seed: str
    id: str
    censored: bool
    gen_metadata: list[GenerationMetadata]


class RequestStatusStable(RequestStatusCheck):
    generations: list[GenerationStable]
    shared: bool
