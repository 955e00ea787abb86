"""Handing out jobs: ``POST /generate/pop``.

A pop checks the worker in, then asks the database for the highest-ranked queued request
the worker can serve, first among its owner's and priority users' requests, then among
everyone's. The request row is locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several server processes never hand out the same image twice; on SQLite the single
writer does the same. One pop serves one request, with up to ``amount`` of its images.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain import workers
from openhorde.domain.context import HordeContext
from openhorde.domain.moderation import role_effects
from openhorde.domain.queue import events
from openhorde.domain.queue.seeds import job_seed
from openhorde.domain.queue.states import JobState
from openhorde.errors import WorkerMaintenance
from openhorde.storage import matching_queries, queue_queries
from openhorde.storage.matching_queries import FAST_WORKER_PIXELSTEPS_PER_SECOND, WorkerSide
from openhorde.storage.tables import Job, Request, User, Worker

MIN_JOB_TTL_SECONDS = 150
"""No lease is shorter than this."""
BATCH_PIXELS_DIVISOR = 3.5
"""The reference's safe-batch rule: a batch's pixels stay under max_pixels × amount / 3.5."""
POST_PROCESSOR_BATCH_WEIGHT = 0.4
MAX_AMOUNT = 20
DEFAULT_CLIP_SKIP = 1
"""Sent to workers when the request names none, as the AI Horde does."""


@dataclass(frozen=True)
class HandedOut:
    """Jobs of one request given to a worker, with everything the worker needs."""

    request_id: str
    job_ids: list[str]
    model: str
    ttl: int
    payload: dict[str, Any]
    source_processing: str
    source_image_url: str | None
    source_mask_url: str | None
    upload_urls: list[str]


@dataclass(frozen=True)
class PopResult:
    """A pop's answer: jobs, or the reasons the queue's head did not match."""

    handed_out: HandedOut | None
    skipped: dict[str, int] = field(default_factory=dict)


def job_ttl_seconds(request: Request, worker: Worker, fixed: int | None = None) -> int:
    """Seconds a worker has to submit a job: ``fixed`` when the operator set one, else the reference's formula."""
    if fixed is not None:
        return fixed
    ttl = 30 + request.accurate_steps * 2 * request.pixels / (512 * 512)
    if request.has_controlnet:
        ttl *= 2
    ttl = max(MIN_JOB_TTL_SECONDS, ttl)
    if worker.extra_slow_worker:
        ttl *= 3
    return int(ttl)


def safe_amount(amount: int, request: Request, max_pixels: int) -> int:
    """How many images of ``request`` to batch in one pop: bounded by the worker's pixels and the request."""
    if request.disable_batching:
        return 1
    post_processors = len(request.params.get("post_processing") or ())
    weight = request.pixels * (1 + POST_PROCESSOR_BATCH_WEIGHT * post_processors)
    fitting = round((max_pixels / BATCH_PIXELS_DIVISOR) * amount / weight)
    return max(1, min(fitting, amount, request.n_waiting))


def worker_side(worker: Worker, owner: User, models: list[str]) -> WorkerSide:
    """The matching view of a popping worker."""
    speed = worker.speed_pps if worker.speed_pps is not None else FAST_WORKER_PIXELSTEPS_PER_SECOND
    return WorkerSide(
        worker_id=worker.id,
        owner_id=owner.id,
        max_pixels=worker.max_pixels,
        nsfw=worker.nsfw,
        allow_img2img=worker.allow_img2img,
        allow_painting=worker.allow_painting,
        allow_post_processing=worker.allow_post_processing,
        allow_controlnet=worker.allow_controlnet,
        allow_lora=worker.allow_lora,
        can_censor_nsfw=worker.can_censor_nsfw,
        owner_trusted=owner.is_trusted or owner.is_moderator,
        fast=speed >= FAST_WORKER_PIXELSTEPS_PER_SECOND,
        limit_max_steps=worker.limit_max_steps,
        require_upfront_kudos=worker.require_upfront_kudos,
        maintenance=worker.maintenance,
        models=models,
        blacklist=list(worker.blacklist),
        priority_user_ids=list(worker.priority_user_ids),
    )


async def _find_request(session: AsyncSession, side: WorkerSide, lock: bool) -> Request | None:
    for priority_only in (True, False):
        request = await matching_queries.find_next_request(session, side, priority_only, lock)
        if request is not None:
            return request
    return None


def worker_payload(request: Request, count: int, seed: int) -> dict[str, Any]:
    """The ``payload`` of a pop: the request's settings in the worker's field names."""
    payload = {k: v for k, v in request.params.items() if k not in ("steps", "n") and v is not None}
    payload.setdefault("clip_skip", DEFAULT_CLIP_SKIP)
    payload.update(
        prompt=request.prompt,
        ddim_steps=request.params["steps"],
        n_iter=count,
        seed=str(seed),
        use_nsfw_censor=request.censor_nsfw and not request.nsfw,
    )
    return payload


async def pop(
    session: AsyncSession,
    ctx: HordeContext,
    user: User,
    check_in: workers.CheckIn,
    amount: int = 1,
    now: float | None = None,
) -> PopResult:
    """Check the worker in and hand it the best job it can do, if any."""
    moment = now or time.time()
    role_effects.check_can_pop(user)
    worker, models = await workers.check_in(session, ctx, user, check_in, moment)
    if worker.paused:
        return PopResult(handed_out=None)
    side = worker_side(worker, user, models)
    is_postgres = session.get_bind().dialect.name == "postgresql"
    request = await _find_request(session, side, lock=is_postgres)
    if request is None:
        if worker.maintenance:
            raise WorkerMaintenance(worker.maintenance_msg or "This worker is in maintenance mode.")
        return PopResult(handed_out=None, skipped=await matching_queries.count_skipped(session, side))

    count = safe_amount(min(amount, MAX_AMOUNT), request, worker.max_pixels)
    model = models[0]
    if request.has_model_list:
        model = await queue_queries.first_matching_model(session, request.id, models) or model
    first_index = request.n_total - request.n_waiting
    seeds = [job_seed(request.seed, request.seed_variation, first_index + i) for i in range(count)]
    ttl = job_ttl_seconds(request, worker, ctx.settings.job_lease_seconds)
    job_ids = [str(uuid.uuid4()) for _ in range(count)]
    await queue_queries.take_images(session, request.id, count, moment)
    await session.execute(
        insert(Job),
        [
            {
                "id": job_id,
                "request_id": request.id,
                "worker_id": worker.id,
                "worker_name": worker.name,
                "model": model,
                "seed": seed,
                "state": JobState.PROCESSING,
                "started_at": moment,
                "deadline_at": moment + ttl,
                "gen_metadata": [],
            }
            for job_id, seed in zip(job_ids, seeds, strict=True)
        ],
    )
    for job_id in job_ids:
        events.announce(session, request.id, events.STARTED, job_id)  # streams see the hand-out (issue 6, part A)
    blobs = ctx.blobs
    return PopResult(
        handed_out=HandedOut(
            request_id=request.id,
            job_ids=job_ids,
            model=model,
            ttl=ttl,
            payload=worker_payload(request, count, seeds[0]),
            source_processing=request.source_processing,
            source_image_url=blobs.presign("GET", request.source_image_key, moment)
            if request.source_image_key
            else None,
            source_mask_url=blobs.presign("GET", request.source_mask_key, moment) if request.source_mask_key else None,
            upload_urls=[blobs.presign("PUT", upload_key(job_id), moment) for job_id in job_ids],
        )
    )


UPLOAD_FOLDER = "results"


def upload_key(job_id: str) -> str:
    """Where a worker uploads a job's image (its ``r2_upload`` URL) while the job is being processed."""
    return f"{UPLOAD_FOLDER}/{job_id}.webp"


def job_of_upload_key(key: str) -> str | None:
    """The job id in an upload key; ``None`` if ``key`` is not one."""
    folder, _, name = key.partition("/")
    return name.removesuffix(".webp") if folder == UPLOAD_FOLDER and name.endswith(".webp") else None


def image_key(job_id: str) -> str:
    """Where a delivered image lives: copied there from the upload at the submit, so that nobody holding the
    upload URL can change an image after it was delivered."""
    return f"images/{job_id}.webp"
