"""``/status/*``: heartbeat, models, performance and modes."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from openhorde import __version__
from openhorde.api.deps import ApiUser, ContextDep, OptionalUser, StoreDep
from openhorde.api.schemas.moderation import ModesInput
from openhorde.api.schemas.status import ActiveModel, Heartbeat, HordeModes, HordePerformance
from openhorde.domain import stats
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
