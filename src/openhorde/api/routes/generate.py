"""Clients' side of image generation: ``/generate/async``, ``/check``, ``/status``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from openhorde.api.deps import ApiCaller, ClientIp, ContextDep, QueueViewDep, SessionDep
from openhorde.api.schemas.generate import (
    DryRunResult,
    GenerationInput,
    GenerationMetadata,
    GenerationStable,
    RequestAsync,
    RequestStatusCheck,
    RequestStatusStable,
    RequestWarning,
)
from openhorde.domain.queue import requests, status
from openhorde.domain.queue.requests import NewRequest

router = APIRouter(prefix="/generate", tags=["generate"])

ClientAgent = Annotated[str | None, Header(alias="Client-Agent")]
ClientAgentUnderscore = Annotated[str | None, Header(alias="client_agent", convert_underscores=False)]


def _new_request(body: GenerationInput, client_agent: str) -> NewRequest:
    params = body.params.model_dump(exclude_none=True)
    n = params.pop("n")
    return NewRequest(
        prompt=body.prompt,
        params=params,
        n=n,
        models=body.models,
        nsfw=body.nsfw,
        censor_nsfw=body.censor_nsfw,
        trusted_workers=body.trusted_workers,
        slow_workers=body.slow_workers,
        workers=body.workers,
        worker_blacklist=body.worker_blacklist,
        source_image=body.source_image,
        source_processing=body.source_processing,
        source_mask=body.source_mask,
        r2=body.r2,
        shared=body.shared,
        dry_run=body.dry_run,
        allow_downgrade=body.allow_downgrade,
        disable_batching=body.disable_batching,
        webhook=body.webhook,
        gallery=body.gallery,
        client_agent=client_agent[:1000],
        replacement_filter=body.replacement_filter,
    )


@router.post(
    "/async",
    status_code=202,
    response_model=RequestAsync,
    response_model_exclude_none=True,
    responses={200: {"model": DryRunResult, "description": "Dry run: the price only."}},
    summary="Queue an image request",
)
async def generate_async(
    body: GenerationInput,
    session: SessionDep,
    ctx: ContextDep,
    caller: ApiCaller,
    ip: ClientIp,
    client_agent: ClientAgent = None,
    client_agent_underscore: ClientAgentUnderscore = None,
) -> RequestAsync | JSONResponse:
    agent = client_agent or client_agent_underscore or "unknown:0:unknown"
    new = _new_request(body, agent)
    new.client_ip = ip
    created = await requests.create_request(session, ctx, caller.user, new, sharedkey=caller.sharedkey)
    if created.id is None:
        return JSONResponse(status_code=200, content={"kudos": created.kudos})
    warnings = [RequestWarning(code=w.code, message=w.message) for w in created.warnings] or None
    return RequestAsync(id=created.id, kudos=round(created.kudos), message=created.message, warnings=warnings)


def _check_body(s: status.RequestStatus) -> dict[str, object]:
    return {
        "finished": s.finished,
        "processing": s.processing,
        "restarted": s.restarted,
        "waiting": s.waiting,
        "done": s.done,
        "faulted": s.faulted,
        "wait_time": s.wait_time,
        "queue_position": s.queue_position,
        "kudos": s.kudos,
        "is_possible": s.is_possible,
        "fault_reason": s.fault_reason if s.faulted else None,
    }


def _status_body(s: status.RequestStatus) -> RequestStatusStable:
    generations = [
        GenerationStable(
            worker_id=g.worker_id,
            worker_name=g.worker_name,
            model=g.model,
            state="censored" if g.censored else "ok",
            img=g.img,
            seed=str(g.seed),
            id=g.job_id,
            censored=g.censored,
            gen_metadata=[GenerationMetadata(**m) for m in g.gen_metadata],
        )
        for g in s.generations
    ]
    return RequestStatusStable(**_check_body(s), generations=generations, shared=s.shared)


@router.get("/check/{id}", response_model=RequestStatusCheck, summary="A request's progress, without images")
async def check(id: str, session: SessionDep, ctx: ContextDep, view: QueueViewDep) -> RequestStatusCheck:
    return RequestStatusCheck(**_check_body(await status.check_status(session, ctx, view, id)))


@router.get("/status/{id}", response_model=RequestStatusStable, summary="A request's progress and its images")
async def get_status(id: str, session: SessionDep, ctx: ContextDep, view: QueueViewDep) -> RequestStatusStable:
    request = await status.get_counters(session, id)
    return _status_body(await status.request_status(session, ctx, view, request, with_images=True))


@router.delete(
    "/status/{id}",
    response_model=RequestStatusStable,
    summary="Cancel a request",
    description="Stops handing out its images; images already being generated are still delivered. "
    "Like the AI Horde, anyone holding the request id may cancel it.",
)
async def cancel(id: str, session: SessionDep, ctx: ContextDep, view: QueueViewDep) -> RequestStatusStable:
    await requests.cancel_request(session, await status.get_counters(session, id))
    view.forget_check(id)
    request = await status.get_counters(session, id)
    return _status_body(await status.request_status(session, ctx, view, request, with_images=True))
