"""``GET /generate/request/{id}``: what a request asked for (its requester or a moderator)."""

from __future__ import annotations

from fastapi import APIRouter

from openhorde.api.deps import ApiUser, StoreDep
from openhorde.api.schemas.request_payloads import GenerationPayloadOut
from openhorde.domain import request_payloads

router = APIRouter(prefix="/generate", tags=["generate"])


@router.get(
    "/request/{id}",
    response_model=GenerationPayloadOut,
    response_model_exclude_none=True,
    summary="What a request asked for (its requester or a moderator)",
    description="The prompt (after the horde's prompt filters), params, models and options the request was queued "
    "with. Source images are not sent back.",
)
async def request_payload(id: str, store: StoreDep, user: ApiUser) -> GenerationPayloadOut:
    found = await request_payloads.get_payload(store, user, id)
    return GenerationPayloadOut(
        prompt=found.prompt,
        params={**found.params, "n": found.n},
        nsfw=found.nsfw,
        trusted_workers=found.trusted_workers,
        slow_workers=found.slow_workers,
        censor_nsfw=found.censor_nsfw,
        workers=found.workers,
        worker_blacklist=found.worker_blacklist,
        models=found.models,
        source_processing=found.source_processing if found.has_source_image else None,
        r2=found.r2,
        shared=found.shared,
        disable_batching=found.disable_batching,
        webhook=found.webhook,
    )
