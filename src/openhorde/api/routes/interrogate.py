"""Alchemy: ``/interrogate/async``, ``/status`` (clients) and ``/pop``, ``/submit`` (alchemist workers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from openhorde.api.deps import ApiKeyHeader, ApiUser, ClientIp, ContextDep, DatabaseDep, ReaderDep, StoreDep
from openhorde.api.openapi import errors
from openhorde.api.schemas.interrogate import (
    InterrogationAsync,
    InterrogationFormStatus,
    InterrogationInput,
    InterrogationPopForm,
    InterrogationPopInput,
    InterrogationPopPayload,
    InterrogationStatus,
    InterrogationSubmitInput,
)
from openhorde.api.schemas.jobs import GenerationSubmitted
from openhorde.domain import workers
from openhorde.domain.interrogations import handout, intake
from openhorde.domain.interrogations.handout import FormResult
from openhorde.domain.interrogations.intake import FormRequest, NewInterrogation
from openhorde.domain.workers import ALCHEMIST, CheckIn, WorkerCapabilities

router = APIRouter(prefix="/interrogate", tags=["interrogate"])

ClientAgent = Annotated[str | None, Header(alias="Client-Agent")]


def _status_body(found: intake.InterrogationStatus) -> InterrogationStatus:
    forms = [InterrogationFormStatus(form=f.name, state=f.state, result=f.result) for f in found.forms]
    return InterrogationStatus(state=found.state, forms=forms)


@router.post(
    "/async",
    status_code=202,
    response_model=InterrogationAsync,
    response_model_exclude_none=True,
    responses=errors(429, 503),
    summary="Queue an image for interrogation or post-processing",
    description="Interrogations live for 20 minutes after their last activity, then are removed.",
)
async def interrogate_async(
    body: InterrogationInput,
    db: DatabaseDep,
    ctx: ContextDep,
    apikey: ApiKeyHeader = None,
    client_agent: ClientAgent = None,
) -> InterrogationAsync:
    new = NewInterrogation(
        source_image=body.source_image,
        forms=[FormRequest(name=f.name, payload=f.payload) for f in body.forms],
        slow_workers=body.slow_workers,
        trusted_workers=body.trusted_workers,
        webhook=body.webhook,
        client_agent=client_agent or "unknown:0:unknown",
    )
    # No StoreDep: downloading the source image must not hold a database connection (see generate_async).
    return InterrogationAsync(id=await intake.queue_interrogation(db, ctx, apikey, new))


@router.get(
    "/status/{id}",
    response_model=InterrogationStatus,
    response_model_exclude_none=True,
    responses=errors(404),
    summary="An interrogation's state and its forms' results",
)
async def get_status(id: str, store: ReaderDep, ctx: ContextDep) -> InterrogationStatus:
    found = await intake.get_interrogation(store, id)
    return _status_body(await intake.status(store, ctx, found))


@router.delete(
    "/status/{id}",
    response_model=InterrogationStatus,
    response_model_exclude_none=True,
    responses=errors(404),
    summary="Cancel an interrogation",
    description="Forms no alchemist has taken yet are cancelled; forms being worked on are still delivered. "
    "Like the AI Horde, anyone holding the interrogation id may cancel it.",
)
async def cancel(id: str, store: StoreDep, ctx: ContextDep) -> InterrogationStatus:
    found = await intake.get_interrogation(store, id)
    await intake.cancel(store, found)
    return _status_body(await intake.status(store, ctx, found))


@router.post(
    "/pop",
    response_model=InterrogationPopPayload,
    response_model_exclude_none=True,
    responses=errors(403),
    summary="Ask for interrogation forms (alchemists)",
)
async def pop(
    body: InterrogationPopInput, store: StoreDep, ctx: ContextDep, user: ApiUser, ip: ClientIp
) -> InterrogationPopPayload:
    capabilities = WorkerCapabilities(
        # The reference's default for an alchemist that names no form.
        forms=tuple(dict.fromkeys(body.forms)) or ("caption",),
        max_tiles=body.max_tiles,
        threads=body.threads,
        bridge_agent=body.bridge_agent,
        priority_user_ids=workers.priority_ids(body.priority_usernames),
    )
    check_in = CheckIn(name=body.name, capabilities=capabilities, ipaddr=ip, worker_type=ALCHEMIST)
    popped = await handout.pop(store, ctx, user, check_in, amount=body.amount)
    forms = [
        InterrogationPopForm(
            id=f.id, form=f.name, payload=f.payload, source_image=f.source_image_url, r2_upload=f.upload_url
        )
        for f in popped.forms
    ]
    return InterrogationPopPayload(forms=forms, skipped=popped.skipped)


@router.post(
    "/submit",
    response_model=GenerationSubmitted,
    responses=errors(403, 404),
    summary="Hand in a form's result (alchemists)",
)
async def submit(
    body: InterrogationSubmitInput, store: StoreDep, ctx: ContextDep, user: ApiUser
) -> GenerationSubmitted:
    result = body.result if isinstance(body.result, dict) else {}
    reward = await handout.submit(store, ctx, user, FormResult(form_id=body.id, result=result, state=body.state))
    return GenerationSubmitted(reward=reward)
