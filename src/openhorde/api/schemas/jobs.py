"""Bodies of the worker side: ``/generate/pop`` and ``/generate/submit``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from openhorde.api.schemas.common import MAX_LIST_ITEMS, ListItem, ResponseModel, WireModel
from openhorde.api.schemas.generate import PostProcessor
from openhorde.api.schemas.names import WorkerName


class PopInput(WireModel):
    """Body of ``POST /generate/pop`` (``PopInputStable``)."""

    name: WorkerName
    priority_usernames: list[ListItem] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    nsfw: bool = False
    models: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    bridge_version: int | None = None
    bridge_agent: str = Field(default="unknown:0:unknown", max_length=1000)
    threads: int = Field(default=1, ge=1, le=50)
    require_upfront_kudos: bool = False
    amount: int = Field(default=1, ge=1, le=20)
    extra_slow_worker: bool = False
    max_pixels: int = Field(default=512 * 512, ge=64 * 64, le=3072 * 3072 * 4)
    blacklist: list[ListItem] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    allow_img2img: bool = True
    allow_painting: bool = True
    allow_unsafe_ipaddr: bool = True
    allow_post_processing: bool = True
    post_processors: list[PostProcessor] | None = Field(
        default=None,
        max_length=16,
        description="OpenHorde extension: the post-processors this worker has. Requests asking for another one "
        "are not handed to it (skipped as post-processing). Absent: every one it allows.",
    )
    allow_controlnet: bool = False
    allow_sdxl_controlnet: bool = False
    allow_lora: bool = False
    allow_hypernetworks: bool = Field(
        default=False,
        description="OpenHorde extension: the worker applies hypernetworks. Requests naming any "
        "(params.hypernetworks) are handed only to such workers (skipped as hypernetwork).",
    )
    limit_max_steps: bool = False
    can_censor_nsfw: bool = Field(
        default=True,
        description="OpenHorde extension: false for a worker without a safety model, which then gets no request "
        "that asks for NSFW censoring.",
    )

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not 1 <= len(name) <= 255:
                raise ValueError("model names have 1 to 255 characters")
        return value


class WorkerMessage(ResponseModel):
    id: str
    message: str
    origin: str | None = None
    expiry: str | None = None


class GenerationPayload(ResponseModel):
    """Answer of ``POST /generate/pop`` (``GenerationPayloadStable``)."""

    payload: dict[str, Any] | None = None
    id: str | None = None
    ids: list[str] = Field(default_factory=list)
    model: str | None = None
    ttl: int | None = None
    source_image: str | None = None
    source_processing: str | None = None
    source_mask: str | None = None
    extra_source_images: list[dict[str, Any]] | None = None
    r2_upload: str | None = None
    r2_uploads: list[str] | None = None
    skipped: dict[str, int] = Field(default_factory=dict)
    messages: list[WorkerMessage] = Field(default_factory=list)


class GenerationMetadataInput(WireModel):
    type: str = Field(max_length=64)
    value: str = Field(max_length=64)
    ref: str | None = Field(default=None, max_length=1024)


class SubmitInput(WireModel):
    """Body of ``POST /generate/submit`` (``SubmitInputStable``)."""

    id: str = Field(min_length=1, max_length=64)
    generation: str | None = None
    state: Literal["ok", "censored", "faulted", "csam"] = "ok"
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    censored: bool = False
    gen_metadata: list[GenerationMetadataInput] = Field(default_factory=list, max_length=50)


class GenerationSubmitted(ResponseModel):
    reward: float
