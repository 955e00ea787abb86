"""Bodies of ``/workers``."""

from __future__ import annotations

from pydantic import Field

from openhorde.api.schemas.common import ResponseModel, WireModel
from openhorde.api.schemas.names import NewWorkerName


class KudosDetails(ResponseModel):
    generated: float
    uptime: int


class TeamRef(ResponseModel):
    name: str | None = None
    id: str | None = None


class WorkerDetails(ResponseModel):
    """``WorkerDetails``; ``post-processing`` keeps its dash."""

    type: str = "image"
    name: str
    id: str
    online: bool
    requests_fulfilled: int
    kudos_rewards: float
    kudos_details: KudosDetails
    performance: str
    threads: int
    uptime: int
    maintenance_mode: bool
    paused: bool | None = None
    info: str | None = None
    nsfw: bool
    owner: str | None = None
    trusted: bool
    flagged: bool
    suspicious: int = 0
    uncompleted_jobs: int
    models: list[str]
    forms: list[str] | None = None
    """An alchemist's forms (``type`` ``interrogation``); absent for an image worker."""
    team: TeamRef = Field(default_factory=TeamRef)
    bridge_agent: str
    max_pixels: int
    megapixelsteps_generated: int
    img2img: bool
    painting: bool
    post_processing: bool = Field(serialization_alias="post-processing")
    lora: bool
    controlnet: bool
    sdxl_controlnet: bool
    messages: list[dict[str, object]] = Field(default_factory=list)


class ModifyWorkerInput(WireModel):
    maintenance: bool | None = None
    maintenance_msg: str | None = Field(default=None, max_length=1000)
    paused: bool | None = None
    info: str | None = Field(default=None, max_length=1000)
    name: NewWorkerName | None = None
    team: str | None = Field(default=None, max_length=36, description="A team id to join, or '' to leave the team.")


class ModifyWorker(ResponseModel):
    maintenance: bool | None = None
    paused: bool | None = None
    info: str | None = None
    name: str | None = None
    team: str | None = None


class DeletedWorker(ResponseModel):
    deleted_id: str
    deleted_name: str
