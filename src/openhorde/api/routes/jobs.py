"""Workers' side of image generation: ``/generate/pop`` and ``/generate/submit``."""

from __future__ import annotations

from fastapi import APIRouter

from openhorde.api import metrics
from openhorde.api.deps import ApiUser, ClientIp, ContextDep, QueueViewDep, StoreDep
from openhorde.api.openapi import errors
from openhorde.api.schemas.common import iso_time
from openhorde.api.schemas.jobs import (
    GenerationPayload,
    GenerationSubmitted,
    PopInput,
    SubmitInput,
    WorkerMessage,
)
from openhorde.domain import workers
from openhorde.domain.moderation import worker_messages
from openhorde.domain.moderation.worker_messages import MessageView
from openhorde.domain.queue import matching, submit
from openhorde.domain.workers import CheckIn, WorkerCapabilities

router = APIRouter(prefix="/generate", tags=["workers"])


def _check_in(body: PopInput, ip: str | None) -> CheckIn:
    capabilities = WorkerCapabilities(
        models=tuple(body.models),
        nsfw=body.nsfw,
        max_pixels=body.max_pixels,
        threads=body.threads,
        bridge_agent=body.bridge_agent,
        blacklist=tuple(body.blacklist),
        priority_user_ids=workers.priority_ids(body.priority_usernames),
        require_upfront_kudos=body.require_upfront_kudos,
        extra_slow_worker=body.extra_slow_worker,
        limit_max_steps=body.limit_max_steps,
        allow_img2img=body.allow_img2img,
        allow_painting=body.allow_painting,
        allow_post_processing=body.allow_post_processing,
        post_processors=tuple(dict.fromkeys(body.post_processors or ())),
        allow_controlnet=body.allow_controlnet,
        allow_sdxl_controlnet=body.allow_sdxl_controlnet,
        allow_lora=body.allow_lora,
        allow_hypernetworks=body.allow_hypernetworks,
        allow_unsafe_ipaddr=body.allow_unsafe_ipaddr,
        can_censor_nsfw=body.can_censor_nsfw,
    )
    return CheckIn(name=body.name, capabilities=capabilities, ipaddr=ip)


def _message(view: MessageView) -> WorkerMessage:
    return WorkerMessage(id=view.id, message=view.message, origin=view.origin, expiry=iso_time(view.expires_at))


@router.post("/pop", response_model=GenerationPayload, response_model_exclude_none=True, summary="Ask for a job")
async def pop(body: PopInput, store: StoreDep, ctx: ContextDep, user: ApiUser, ip: ClientIp) -> GenerationPayload:
    result = await matching.pop(store, ctx, user, _check_in(body, ip), amount=body.amount)
    found = await worker_messages.for_pop(store, ctx, result.worker_id) if result.worker_id else []
    messages = [_message(m) for m in found]
    job = result.handed_out
    metrics.count_pop(job is not None)
    if job is None:
        return GenerationPayload(payload={}, ids=[], skipped=result.skipped, messages=messages)
    return GenerationPayload(
        payload=job.payload,
        id=job.job_ids[0],
        ids=job.job_ids,
        model=job.model,
        ttl=job.ttl,
        source_image=job.source_image_url,
        source_processing=job.source_processing,
        source_mask=job.source_mask_url,
        r2_upload=job.upload_urls[0],
        r2_uploads=job.upload_urls,
        skipped={},
        messages=messages,
    )


@router.post("/submit", response_model=GenerationSubmitted, responses=errors(404), summary="Hand in a job's image")
async def submit_job(
    body: SubmitInput, store: StoreDep, ctx: ContextDep, user: ApiUser, view: QueueViewDep
) -> GenerationSubmitted:
    submission = submit.Submission(
        job_id=body.id,
        generation=body.generation,
        state=body.state,
        seed=body.seed,
        censored=body.censored,
        gen_metadata=[m.model_dump(exclude_none=True) for m in body.gen_metadata],
    )
    settled = await submit.submit(store, ctx, user, submission, view=view)
    metrics.count_submit(body.state)
    return GenerationSubmitted(reward=settled.reward)
