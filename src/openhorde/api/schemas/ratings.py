"""Bodies of ``POST /generate/rate/{id}`` (the AI Horde's ``AestheticsPayload``)."""

from __future__ import annotations

from pydantic import Field

from openhorde.api.schemas.common import MAX_ID_CHARS, WireModel


class AestheticRating(WireModel):
    id: str = Field(min_length=MAX_ID_CHARS, max_length=MAX_ID_CHARS, description="The id of the image rated.")
    rating: int = Field(ge=1, le=10, description="The aesthetic rating 1-10 of this image.")
    artifacts: int | None = Field(
        default=None, ge=0, le=5, description="Its flaws: 0 for flawless ... 5 for an image that is total garbage."
    )


class AestheticsPayload(WireModel):
    best: str | None = Field(
        default=None,
        min_length=MAX_ID_CHARS,
        max_length=MAX_ID_CHARS,
        description="The id of the best image of the set (of two or more).",
    )
    ratings: list[AestheticRating] = Field(default_factory=list, max_length=20)
