"""``/workers``: the horde's workers, and their owners' changes."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiUser, ContextDep, OptionalUser, StoreDep
from openhorde.api.schemas.workers import (
    DeletedWorker,
    KudosDetails,
    ModifyWorker,
    ModifyWorkerInput,
    TeamRef,
    WorkerDetails,
)
from openhorde.domain import workers
from openhorde.domain.accounts import Account
from openhorde.domain.workers import WorkerChanges, WorkerView
from openhorde.errors import WorkerNotFound

router = APIRouter(prefix="/workers", tags=["workers"])


def _details(view: WorkerView, viewer: Account | None = None) -> WorkerDetails:
    w, can = view.worker, view.worker.capabilities
    speed_mps = (w.speed_pps or 0) / 1_000_000
    alchemist = w.worker_type == workers.ALCHEMIST
    if alchemist:  # an alchemist's speed is in forms per second
        performance = f"{1 / w.speed_pps:.1f} seconds per form" if w.speed_pps else "No requests fulfilled yet"
    else:
        performance = f"{speed_mps:.1f} megapixelsteps per second" if w.speed_pps else "No requests fulfilled yet"
    return WorkerDetails(
        type=w.worker_type,
        name=w.name,
        id=w.id,
        online=view.online,
        requests_fulfilled=w.fulfilments,
        kudos_rewards=(w.kudos_generated_cents + w.kudos_uptime_cents) / 100,
        kudos_details=KudosDetails(generated=w.kudos_generated_cents / 100, uptime=w.kudos_uptime_cents // 100),
        performance=performance,
        threads=can.threads,
        uptime=int(w.uptime_seconds),
        maintenance_mode=w.maintenance,
        paused=w.paused,
        info=w.info,
        nsfw=can.nsfw,
        owner=view.owner.display_name if view.owner.public_workers or _privileged(viewer, view) else None,
        trusted=view.owner.is_trusted,
        flagged=view.owner.is_flagged,
        uncompleted_jobs=w.uncompleted_jobs,
        models=view.models,
        forms=view.forms if alchemist else None,
        bridge_agent=can.bridge_agent,
        max_pixels=can.max_pixels,
        megapixelsteps_generated=round(w.megapixelsteps),
        img2img=can.allow_img2img,
        painting=can.allow_painting,
        post_processing=can.allow_post_processing,
        lora=can.allow_lora,
        controlnet=can.allow_controlnet,
        sdxl_controlnet=can.allow_sdxl_controlnet,
        team=TeamRef(name=view.team_name, id=w.team_id) if w.team_id else TeamRef(),
    )


def _privileged(viewer: Account | None, view: WorkerView) -> bool:
    return viewer is not None and (viewer.id == view.owner.id or viewer.is_moderator or viewer.is_admin)


@router.get(
    "",
    response_model=list[WorkerDetails],
    response_model_exclude_none=True,
    response_model_by_alias=True,
    summary="All workers",
)
async def list_workers(
    store: StoreDep,
    ctx: ContextDep,
    viewer: OptionalUser,
    type: Annotated[str | None, Query(description="image, text or interrogation; empty for all")] = None,
    name: Annotated[str | None, Query()] = None,
) -> list[WorkerDetails]:
    rows = await workers.list_workers(store, name, type or None)
    views = await workers.views(store, rows, ctx.settings.queue.worker_stale_seconds, time.time())
    return [_details(v, viewer) for v in views]


async def _one(store: StoreDep, ctx: ContextDep, worker_id: str, viewer: Account | None) -> WorkerDetails:
    worker = await workers.get_worker(store, worker_id)
    [view] = await workers.views(store, [worker], ctx.settings.queue.worker_stale_seconds, time.time())
    return _details(view, viewer)


@router.get(
    "/name/{worker_name}",
    response_model=WorkerDetails,
    response_model_exclude_none=True,
    response_model_by_alias=True,
    summary="A worker, by name",
)
async def worker_by_name(worker_name: str, store: StoreDep, ctx: ContextDep, viewer: OptionalUser) -> WorkerDetails:
    worker = await workers.get_worker_by_name(store, worker_name)
    if worker is None:
        raise WorkerNotFound(f"Worker with name '{worker_name}' not found.")
    return await _one(store, ctx, worker.id, viewer)


@router.get(
    "/{worker_id}",
    response_model=WorkerDetails,
    response_model_exclude_none=True,
    response_model_by_alias=True,
    summary="A worker, by id",
)
async def worker_by_id(worker_id: str, store: StoreDep, ctx: ContextDep, viewer: OptionalUser) -> WorkerDetails:
    return await _one(store, ctx, worker_id, viewer)


@router.put(
    "/{worker_id}",
    response_model=ModifyWorker,
    response_model_exclude_none=True,
    summary="Change a worker (owner or moderator)",
)
async def modify_worker(worker_id: str, body: ModifyWorkerInput, store: StoreDep, user: ApiUser) -> ModifyWorker:
    worker = await workers.get_worker(store, worker_id)
    changes = WorkerChanges(
        maintenance=body.maintenance,
        maintenance_msg=body.maintenance_msg,
        paused=body.paused,
        info=body.info,
        name=body.name,
        team=body.team,
    )
    changed = await workers.update_worker(store, worker, user, changes)
    return ModifyWorker.model_validate(changed)


@router.delete("/{worker_id}", response_model=DeletedWorker, summary="Delete a worker (owner or moderator)")
async def delete_worker(worker_id: str, store: StoreDep, user: ApiUser) -> DeletedWorker:
    worker = await workers.get_worker(store, worker_id)
    answer = DeletedWorker(deleted_id=worker.id, deleted_name=worker.name)
    await workers.delete_worker(store, worker, user)
    return answer
