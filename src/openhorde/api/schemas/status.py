"""Bodies of ``/status/*``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from openhorde.api.schemas.common import ResponseModel, WireModel


class ActiveModel(ResponseModel):
    name: str
    count: int
    performance: float
    queued: float
    jobs: float
    eta: int
    type: str = "image"


class Heartbeat(ResponseModel):
    message: str
    version: str


class HordePerformance(ResponseModel):
    queued_requests: int
    queued_text_requests: int = 0
    worker_count: int
    text_worker_count: int = 0
    thread_count: int
    text_thread_count: int = 0
    queued_megapixelsteps: float
    past_minute_megapixelsteps: float
    queued_forms: float = 0
    interrogator_count: int = 0
    interrogator_thread_count: int = 0
    queued_tokens: float = 0
    past_minute_tokens: float = 0


class HordeModes(ResponseModel):
    maintenance_mode: bool = False
    invite_only_mode: bool = False
    raid_mode: bool | None = None


class Newspiece(ResponseModel):
    date_published: str
    newspiece: str
    importance: str
    tags: list[str]
    title: str
    more_info_urls: list[str]
    id: int
    """Ours: the id an admin names to withdraw the piece (``DELETE /status/news/{news_id}``)."""


class NewsInput(WireModel):
    title: str = Field(min_length=1, max_length=200)
    newspiece: str = Field(min_length=1, max_length=10_000)
    importance: str = Field(default="Information", min_length=1, max_length=32)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=20)
    more_info_urls: list[Annotated[str, Field(max_length=1000)]] = Field(default_factory=list, max_length=20)
    date_published: str | None = Field(
        default=None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD; today (UTC) if not given."
    )


class SimpleResponse(ResponseModel):
    message: str = "OK"
