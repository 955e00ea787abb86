"""Bodies of ``/interrogate/*`` (alchemy), in the AI Horde's field names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from openhorde.api.schemas.common import MAX_LIST_ITEMS, ListItem, ResponseModel, WireModel
from openhorde.api.schemas.names import WorkerName
from openhorde.domain.interrogations.forms import DEFAULT_WORKER_TILES, FORM_NAMES, MAX_WORKER_TILES

FormName = Literal[
    "caption",
    "interrogation",
    "nsfw",
    "GFPGAN",
    "RealESRGAN_x4plus",
    "RealESRGAN_x2plus",
    "RealESRGAN_x4plus_anime_6B",
    "NMKD_Siax",
    "4x_AnimeSharp",
    "CodeFormers",
    "strip_background",
    "vectorize",
    "palette",
    "describe",
    "aesthetic",
]
"""The forms of the reference's ``ModelInterrogationFormStable``, and the four its server added since (the same
list as ``forms.FORM_NAMES``)."""
MAX_FORMS = 2 * len(FORM_NAMES)
"""Forms in one request: each kind once counts (a repeated kind is dropped, as the reference does)."""


class InterrogationFormInput(WireModel):
    """``ModelInterrogationFormStable``: a form and its settings (e.g. a post-processor's)."""

    name: FormName
    payload: dict[str, Any] | None = None


class InterrogationInput(WireModel):
    """Body of ``POST /interrogate/async`` (``ModelInterrogationInputStable``)."""

    forms: list[InterrogationFormInput] = Field(min_length=1, max_length=MAX_FORMS)
    source_image: str = Field(
        min_length=1, description="The image to interrogate: a public http(s) URL, or the image in base64."
    )
    slow_workers: bool = True
    trusted_workers: bool = False
    webhook: str | None = Field(default=None, min_length=10, max_length=1024, pattern=r"^https?://")


class InterrogationAsync(ResponseModel):
    """``RequestInterrogationResponse``."""

    id: str
    message: str | None = None


class InterrogationFormStatus(ResponseModel):
    """A form's state; ``result`` only once it has one (horde-sdk reads an absent result as none, but fails to
    read an empty one)."""

    form: str
    state: str
    result: dict[str, Any] | None = None


class InterrogationStatus(ResponseModel):
    state: str
    forms: list[InterrogationFormStatus]


class InterrogationPopInput(WireModel):
    """Body of ``POST /interrogate/pop`` (``InterrogationPopInput``)."""

    name: WorkerName
    priority_usernames: list[ListItem] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    forms: list[FormName] = Field(default_factory=list, max_length=MAX_FORMS)
    amount: int = Field(default=1, ge=1, le=20)
    bridge_version: int | None = None
    bridge_agent: str = Field(default="unknown:0:unknown", max_length=1000)
    threads: int = Field(default=1, ge=1, le=100)
    max_tiles: int = Field(default=DEFAULT_WORKER_TILES, ge=1, le=MAX_WORKER_TILES)


class InterrogationPopForm(ResponseModel):
    """``InterrogationPopFormPayload``: ``r2_upload`` only for post-processors."""

    id: str
    form: str
    payload: dict[str, Any] | None = None
    source_image: str
    r2_upload: str | None = None


class InterrogationPopPayload(ResponseModel):
    forms: list[InterrogationPopForm] = Field(default_factory=list)
    skipped: dict[str, int] = Field(default_factory=dict)


class InterrogationSubmitInput(WireModel):
    """Body of ``POST /interrogate/submit``: ``result`` maps the form's name to its result (a caption's text,
    ``nsfw``'s verdict, ``interrogation``'s tags, a post-processor's ``"R2"`` once its image is uploaded)."""

    id: str = Field(min_length=1, max_length=64)
    result: dict[str, Any] | str | None = None
    state: Literal["ok", "faulted"] = "ok"
