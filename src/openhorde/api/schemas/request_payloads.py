"""Body of ``GET /generate/request/{id}``: the request as it was queued (the AI Horde's generation input)."""

from __future__ import annotations

from typing import Any

from openhorde.api.schemas.common import ResponseModel


class GenerationPayloadOut(ResponseModel):
    prompt: str
    params: dict[str, Any]
    nsfw: bool
    trusted_workers: bool
    slow_workers: bool
    censor_nsfw: bool
    workers: list[str]
    worker_blacklist: bool
    models: list[str]
    source_processing: str | None = None
    """Only for a request with a source image."""
    r2: bool
    shared: bool
    disable_batching: bool
    webhook: str | None = None
