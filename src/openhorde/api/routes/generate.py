"""Clients' side of image generation: ``/generate/async``, ``/check``, ``/status``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response

from openhorde.api import push
from openhorde.api.deps import (
    ApiKeyHeader,
    ClientIp,
    ContextDep,
    DatabaseDep,
    FollowerDep,
    QueueViewDep,
    ReaderDep,
    StoreDep,
)
from openhorde.api.openapi import errors
from openhorde.api.request_bodies import check_body, status_body
from openhorde.api.schemas.generate import (
    DryRunResult,
    GenerationInput,
    RequestAsync,
    RequestStatusCheck,
    RequestStatusStable,
    RequestWarning,
    ResolvedRequest,
    ResolvedStyle,
)
from openhorde.domain.queue import requests, status
from openhorde.domain.queue.requests import CreatedRequest, NewRequest

router = APIRouter(prefix="/generate", tags=["generate"])

ClientAgent = Annotated[str | None, Header(alias="Client-Agent")]
ClientAgentUnderscore = Annotated[str | None, Header(alias="client_agent", convert_underscores=False)]
Prefer = Annotated[
    str | None,
    Header(
        alias="Prefer",
        description="OpenHorde: `wait=N` answers the finished `/generate/status` body (200, `Preference-Applied`) "
        "if the request ends within N seconds (at most `prefer_wait_max_seconds`), else the usual 202.",
    ),
]


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
        style=body.style,
    )


def dry_run_body(created: CreatedRequest) -> dict[str, Any]:
    """A dry run's answer: the price, and for a styled request what it would run with (``resolved``)."""
    resolved = None
    if (r := created.resolved) is not None:
        style = ResolvedStyle(id=r.style_id, name=r.style_name)
        resolved = ResolvedRequest(
            prompt=r.prompt, params=r.params, models=r.models, style=style, negative_prompt=r.negative_prompt
        )
    return DryRunResult(kudos=created.kudos, resolved=resolved).model_dump(exclude_none=True)


@router.post(
    "/async",
    status_code=202,
    response_model=RequestAsync,
    response_model_exclude_none=True,
    responses={
        **errors(503, 404),  # maintenance mode; an unknown style
        200: {
            "model": DryRunResult | RequestStatusStable,
            "description": "Dry run: the price only. With `Prefer: wait=N`: the finished request's status.",
        },
    },
    summary="Queue an image request",
)
async def generate_async(
    body: GenerationInput,
    db: DatabaseDep,
    ctx: ContextDep,
    ip: ClientIp,
    follower: FollowerDep,
    apikey: ApiKeyHeader = None,
    client_agent: ClientAgent = None,
    client_agent_underscore: ClientAgentUnderscore = None,
    prefer: Prefer = None,
) -> RequestAsync | Response:
    agent = client_agent or client_agent_underscore or "unknown:0:unknown"
    new = _new_request(body, agent)
    new.client_ip = ip
    # No StoreDep here: a source image may take seconds to download, and that wait must not hold a database
    # connection. queue_request opens its unit of work once the images are in hand.
    created = await requests.queue_request(db, ctx, apikey, new)
    if created.id is None:
        return JSONResponse(status_code=200, content=dry_run_body(created))
    warnings = [RequestWarning(code=w.code, message=w.message) for w in created.warnings] or None
    accepted = RequestAsync(id=created.id, kudos=round(created.kudos), message=created.message, warnings=warnings)
    if (wait := push.requested_wait(prefer, ctx.settings.push.prefer_wait_max_seconds)) is not None:
        return push.WaitedResponse(follower, accepted, wait)  # waits after the commit
    return accepted


@router.get("/check/{id}", response_model=RequestStatusCheck, summary="A request's progress, without images")
async def check(id: str, store: ReaderDep, ctx: ContextDep, view: QueueViewDep) -> RequestStatusCheck:
    return RequestStatusCheck(**check_body(await status.check_status(store, ctx, view, id)))


@router.get("/status/{id}", response_model=RequestStatusStable, summary="A request's progress and its images")
async def get_status(id: str, store: ReaderDep, ctx: ContextDep, view: QueueViewDep) -> RequestStatusStable:
    return status_body(await status.full_status(store, ctx, view, id, remembered=True))


@router.delete(
    "/status/{id}",
    response_model=RequestStatusStable,
    summary="Cancel a request",
    description="Stops handing out its images; images already being generated are still delivered. "
    "Like the AI Horde, anyone holding the request id may cancel it.",
)
async def cancel(id: str, store: StoreDep, ctx: ContextDep, view: QueueViewDep) -> RequestStatusStable:
    await requests.cancel_request(store, await status.get_counters(store, id))
    return status_body(await status.full_status(store, ctx, view, id))
