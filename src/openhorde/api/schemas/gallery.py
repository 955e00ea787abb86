"""Bodies of ``/gallery`` (an OpenHorde extension)."""

from __future__ import annotations

from typing import Any

from openhorde.api.schemas.common import ResponseModel


class GalleryImageOut(ResponseModel):
    id: str
    request_id: str
    url: str
    prompt: str
    params: dict[str, Any]
    model: str
    seed: int
    worker_id: str | None
    worker_name: str
    width: int
    height: int
    source_processing: str
    censored: bool
    created_at: float


class GalleryPageOut(ResponseModel):
    images: list[GalleryImageOut]
    page: int
    pages: int
    total: int


class GalleryImageDeleted(ResponseModel):
    deleted: bool
