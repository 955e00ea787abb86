"""Bodies of ``/status/*``."""

from __future__ import annotations

from openhorde.api.schemas.common import ResponseModel


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
