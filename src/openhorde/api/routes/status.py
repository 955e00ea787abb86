"""``/status/*``: heartbeat, models, performance, modes, news, and the sampler and style contracts.

News is edited by admins through routes of ours: ``POST /status/news`` publishes a piece and
``DELETE /status/news/{news_id}`` withdraws one (the AI Horde reads its news from a file in its source).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from openhorde import __version__
from openhorde.api.deps import ApiUser, ContextDep, OptionalUser, ReaderDep, StoreDep
from openhorde.api.schemas.contracts import (
    PresentationTiers,
    SamplerConstraints,
    SamplerDetails,
    StyleContract,
    WorkAccounting,
)
from openhorde.api.schemas.moderation import ModesInput
from openhorde.api.schemas.status import (
    ActiveModel,
    Heartbeat,
    HordeModes,
    HordePerformance,
    NewsInput,
    Newspiece,
    SimpleResponse,
)
from openhorde.domain import contracts, news, stats
from openhorde.domain.moderation import modes as horde_modes
from openhorde.domain.moderation.cache import Modes
from openhorde.domain.moderation.modes import ModeChanges
from openhorde.domain.stats import ModelStatus

router = APIRouter(prefix="/status", tags=["status"])


def _active(model: ModelStatus) -> ActiveModel:
    return ActiveModel(
        name=model.name,
        count=model.count,
        performance=round(model.performance, 1),
        queued=model.queued,
        jobs=model.jobs,
        eta=model.eta,
    )


@router.get("/heartbeat", response_model=Heartbeat, summary="Is the server up")
async def heartbeat() -> Heartbeat:
    return Heartbeat(message="OK", version=__version__)


@router.get("/models", response_model=list[ActiveModel], summary="Models with their workers and queue")
async def models(
    store: StoreDep,
    ctx: ContextDep,
    type: Annotated[str, Query()] = "image",
    min_count: Annotated[int | None, Query(ge=0)] = None,
    max_count: Annotated[int | None, Query(ge=0)] = None,
    model_state: Annotated[Literal["known", "custom", "all"], Query()] = "all",
) -> list[ActiveModel]:
    if type not in ("image", ""):
        return []
    live_since = time.time() - ctx.settings.queue.worker_stale_seconds
    found = await stats.model_statuses(store, live_since, model_state)
    return [
        _active(m)
        for m in found
        if (min_count is None or m.count >= min_count) and (max_count is None or m.count <= max_count)
    ]


@router.get("/models/{model_name}", response_model=list[ActiveModel], summary="One model's workers and queue")
async def model(model_name: str, store: StoreDep, ctx: ContextDep) -> list[ActiveModel]:
    live_since = time.time() - ctx.settings.queue.worker_stale_seconds
    found = await stats.model_status(store, live_since, model_name)
    return [] if found is None else [_active(found)]


@router.get("/performance", response_model=HordePerformance, summary="The horde's load")
async def performance(store: StoreDep, ctx: ContextDep) -> HordePerformance:
    now = time.time()
    figures = await stats.performance(store, now - ctx.settings.queue.worker_stale_seconds, now)
    return HordePerformance(
        queued_requests=figures.queued_images,
        worker_count=figures.worker_count,
        thread_count=figures.thread_count,
        queued_megapixelsteps=figures.queued_megapixelsteps,
        past_minute_megapixelsteps=figures.past_minute_megapixelsteps,
        queued_forms=figures.queued_forms,
        interrogator_count=figures.interrogator_count,
        interrogator_thread_count=figures.interrogator_thread_count,
    )


def _modes_out(found: Modes, show_raid: bool) -> HordeModes:
    return HordeModes(
        maintenance_mode=found.maintenance,
        invite_only_mode=found.invite_only,
        raid_mode=found.raid if show_raid else None,
    )


@router.get("/modes", response_model=HordeModes, response_model_exclude_none=True, summary="Horde modes")
async def modes(store: StoreDep, ctx: ContextDep, user: OptionalUser) -> HordeModes:
    # Raid mode is shown to moderators only, as the AI Horde does.
    return _modes_out(await horde_modes.current(store, ctx), horde_modes.is_moderator(user))


@router.put(
    "/modes", response_model=HordeModes, summary="Change the horde modes (admins; moderators for invite-only, raid)"
)
async def change_modes(body: ModesInput, store: StoreDep, ctx: ContextDep, user: ApiUser) -> HordeModes:
    changes = ModeChanges(maintenance=body.maintenance, invite_only=body.invite_only, raid=body.raid)
    return _modes_out(await horde_modes.change(store, ctx, user, changes), True)


def _newspiece(piece: news.NewsPiece) -> Newspiece:
    return Newspiece(
        id=piece.id,
        date_published=piece.date_published,
        newspiece=piece.newspiece,
        importance=piece.importance,
        tags=piece.tags,
        title=piece.title,
        more_info_urls=piece.more_info_urls,
    )


@router.get("/news", response_model=list[Newspiece], summary="The horde's news, newest first")
async def list_news(store: ReaderDep) -> list[Newspiece]:
    return [_newspiece(piece) for piece in await news.newest_first(store)]


@router.post("/news", response_model=Newspiece, status_code=201, summary="Publish a piece of news (admins; ours)")
async def publish_news(body: NewsInput, store: StoreDep, user: ApiUser) -> Newspiece:
    draft = news.NewDraft(**body.model_dump())
    return _newspiece(await news.publish(store, user, draft))


@router.delete("/news/{news_id}", response_model=SimpleResponse, summary="Withdraw a piece of news (admins; ours)")
async def withdraw_news(
    news_id: Annotated[int, Path(ge=1, le=2**31 - 1)], store: StoreDep, user: ApiUser
) -> SimpleResponse:
    await news.withdraw(store, user, news_id)
    return SimpleResponse()


@router.get(
    "/sampler_constraints",
    response_model=SamplerConstraints,
    summary="The samplers and the work each does",
)
async def sampler_constraints() -> SamplerConstraints:
    found = contracts.sampler_constraints()
    samplers = {}
    for name, sampler in found.samplers.items():
        details = dataclasses.asdict(sampler)
        details["work_profile"] = {k: v for k, v in details["work_profile"].items() if v is not None}
        samplers[name] = SamplerDetails.model_validate(details)
    return SamplerConstraints(
        schema_version=found.schema_version,
        samplers=samplers,
        work_accounting=WorkAccounting(authoritative_note=contracts.WORK_ACCOUNTING_NOTE),
        presentation_tiers=PresentationTiers(note=contracts.TIERS_NOTE, recommended=found.recommended),
    )


@router.get("/style_contract", response_model=StyleContract, summary="What a style's template and params may do")
async def style_contract(ctx: ContextDep) -> StyleContract:
    limits = ctx.settings.limits
    found = contracts.style_contract(limits.rate_limit_default if limits.rate_limits == "on" else "")
    return StyleContract.model_validate(dataclasses.asdict(found))
