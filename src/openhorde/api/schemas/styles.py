"""Bodies of ``/styles/image``, ``/styles/text`` and ``/collections``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from openhorde.api.schemas.common import MAX_LIST_ITEMS, ModelName, ResponseModel, WireModel
from openhorde.api.schemas.generate import (
    ImageParams,
    LoraInput,
    PostProcessor,
    RequestWarning,
    Sampler,
    TextualInversionInput,
)
from openhorde.domain.styles.common import INFO_MAX_LENGTH, NAME_MAX_LENGTH

MAX_PROMPT_TEMPLATE_CHARS = 20_000
MAX_URL_CHARS = 1000
StyleReference = str
"""A style's id or name."""


class StyleParams(WireModel):
    """``params`` of a style (``ModelStyleInputParamsStable``): what a request made with it runs with.

    ``width`` and ``height`` have no default: a style that sets none leaves a request its own size.
    """

    sampler_name: Sampler = "k_euler_a"
    cfg_scale: float = Field(default=7.5, ge=0, le=100)
    denoising_strength: float | None = Field(default=None, ge=0.01, le=1.0)
    hires_fix_denoising_strength: float | None = Field(default=None, ge=0.01, le=1.0)
    height: int | None = Field(default=None, ge=64, le=3072, multiple_of=64)
    width: int | None = Field(default=None, ge=64, le=3072, multiple_of=64)
    post_processing: list[PostProcessor] = Field(default_factory=list)
    karras: bool = False
    tiling: bool = False
    hires_fix: bool = False
    clip_skip: int | None = Field(default=None, ge=1, le=12)
    facefixer_strength: float | None = Field(default=None, ge=0, le=1.0)
    loras: list[LoraInput] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    tis: list[TextualInversionInput] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    special: dict[str, Any] | None = Field(default=None, max_length=50)
    workflow: Literal["qr_code"] | None = None
    transparent: bool = False
    steps: int = Field(default=30, ge=1, le=500)

    @model_validator(mode="after")
    def _as_image_params(self) -> StyleParams:
        # The same field rules as a request's params (two decimals of cfg, unique post-processors).
        ImageParams.model_validate(self.model_dump(exclude_none=True))
        return self


class StyleFieldsInput(WireModel):
    info: str | None = Field(default=None, max_length=INFO_MAX_LENGTH)
    params: StyleParams | None = None
    public: bool | None = None
    nsfw: bool | None = None
    tags: list[str] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    models: list[ModelName] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    sharedkey: str | None = Field(
        default=None, max_length=36, description="A shared key of yours that pays for requests made with this style."
    )


class StyleInput(StyleFieldsInput):
    """Body of ``POST /styles/image`` (``ModelStyleInputStable``)."""

    name: str = Field(max_length=NAME_MAX_LENGTH)
    prompt: str = Field(
        default="{p}{np}",
        max_length=MAX_PROMPT_TEMPLATE_CHARS,
        description="The prompt template: '{p}' is replaced by the request's prompt, '{np}' by its negative part.",
    )
    public: bool | None = True
    nsfw: bool | None = False


class StylePatch(StyleFieldsInput):
    """Body of ``PATCH /styles/image/{id}``: every field optional."""

    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_TEMPLATE_CHARS)


class StyleExampleInput(WireModel):
    url: str = Field(max_length=MAX_URL_CHARS)
    primary: bool = False


class StyleExamplePatch(WireModel):
    url: str | None = Field(default=None, max_length=MAX_URL_CHARS)
    primary: bool | None = None


class StyleExample(ResponseModel):
    url: str
    primary: bool
    id: str


class StyleStable(ResponseModel):
    """A style as ``GET /styles/image`` shows it; ``sharedkey`` only to its owner."""

    name: str
    info: str | None = None
    prompt: str
    params: dict[str, Any]
    public: bool
    nsfw: bool
    tags: list[str]
    models: list[str]
    sharedkey: str | None = None
    id: str
    use_count: int
    creator: str
    updated: str
    """When it was last changed (ISO 8601)."""
    examples: list[StyleExample]


class StyleModify(ResponseModel):
    id: str
    message: str = "OK"
    warnings: list[RequestWarning] | None = None


class SimpleResponse(ResponseModel):
    message: str = "OK"


class CollectionInput(WireModel):
    """Body of ``POST /collections``: styles by id or name, in order."""

    name: str = Field(max_length=NAME_MAX_LENGTH)
    info: str | None = Field(default=None, max_length=INFO_MAX_LENGTH)
    public: bool = True
    styles: list[StyleReference] = Field(max_length=MAX_LIST_ITEMS)


class CollectionPatch(WireModel):
    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    info: str | None = Field(default=None, max_length=INFO_MAX_LENGTH)
    public: bool | None = None
    styles: list[StyleReference] | None = Field(default=None, max_length=MAX_LIST_ITEMS)


class CollectionStyle(ResponseModel):
    name: str
    id: str


class CollectionDetails(ResponseModel):
    id: str
    name: str
    type: str
    info: str | None = None
    public: bool
    styles: list[CollectionStyle]
    use_count: int
