"""Handing out jobs: ``POST /generate/pop``.

A pop checks the worker in, then asks the database for the highest-ranked queued request
the worker can serve, first among its owner's and priority users' requests, then among
everyone's. The request row is locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several server processes never hand out the same image twice; on SQLite the single
writer does the same. One pop serves one request, with up to ``amount`` of its images.
On PostgreSQL the find and the take are one statement, which applies this module's batch
and lease rules in SQL (``handout_terms`` gives it their numbers).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from openhorde.domain import post_processors, workers
from openhorde.domain.context import HordeContext
from openhorde.domain.moderation import role_effects
from openhorde.domain.queue import events
from openhorde.domain.queue.blob_keys import upload_key
from openhorde.domain.queue.seeds import job_seed
from openhorde.domain.worker_cache import WorkerState
from openhorde.errors import WorkerMaintenance
from openhorde.storage.matching_queries import FAST_WORKER_PIXELSTEPS_PER_SECOND, WorkerSide
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.handouts import Candidate, HandoutTerms, NewJob, Taken
from openhorde.storage.store import Store

MIN_JOB_TTL_SECONDS = 150
"""No lease is shorter than this."""
EXTRA_SLOW_LEASE_FACTOR = 3
"""An extra-slow worker's lease is this many times the usual one."""
BATCH_PIXELS_DIVISOR = 3.5
"""The reference's safe-batch rule: a batch's pixels stay under max_pixels × amount / 3.5."""
POST_PROCESSOR_BATCH_WEIGHT = 0.4
MAX_AMOUNT = 20
CONTENDED_RETRY_DELAYS = (0.005, 0.02)
"""Seconds to wait before looking again when every request a pop could serve was held by concurrent pops: their
transactions last milliseconds, and one of them may leave images waiting (a request of several images), so a
second look usually finds work where giving up would send the worker away empty for its whole poll interval."""
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
    worker_id: str | None = None
    """The popping worker, once checked in."""


def job_ttl_seconds(request: Candidate, worker: WorkerState, fixed: int | None = None) -> int:
    """Seconds a worker has to submit a job: ``fixed`` when the operator set one, else the reference's formula."""
    if fixed is not None:
        return fixed
    ttl = 30 + request.accurate_steps * 2 * request.pixels / (512 * 512)
    if request.has_controlnet:
        ttl *= 2
    ttl = max(MIN_JOB_TTL_SECONDS, ttl)
    if worker.capabilities.extra_slow_worker:
        ttl *= EXTRA_SLOW_LEASE_FACTOR
    return int(ttl)


def safe_amount(amount: int, request: Candidate, max_pixels: int) -> int:
    """How many images of ``request`` to batch in one pop: bounded by the worker's pixels and the request."""
    if request.disable_batching:
        return 1
    post_processors = len(request.params.get("post_processing") or ())
    weight = request.pixels * (1 + POST_PROCESSOR_BATCH_WEIGHT * post_processors)
    fitting = round((max_pixels / BATCH_PIXELS_DIVISOR) * amount / weight)
    return max(1, min(fitting, amount, request.n_waiting))


def worker_side(worker: WorkerState, owner: Account) -> WorkerSide:
    """The matching view of a popping worker: its capabilities as plain values, and what its owner adds."""
    can = worker.capabilities
    speed = worker.speed_pps if worker.speed_pps is not None else FAST_WORKER_PIXELSTEPS_PER_SECOND
    return WorkerSide(
        worker_id=worker.id,
        owner_id=owner.id,
        max_pixels=can.max_pixels,
        nsfw=can.nsfw,
        allow_img2img=can.allow_img2img,
        allow_painting=can.allow_painting,
        allow_post_processing=can.allow_post_processing,
        allow_controlnet=can.allow_controlnet,
        allow_lora=can.allow_lora,
        allow_hypernetworks=can.allow_hypernetworks,
        can_censor_nsfw=can.can_censor_nsfw,
        owner_trusted=owner.is_trusted or owner.is_moderator,
        fast=speed >= FAST_WORKER_PIXELSTEPS_PER_SECOND,
        limit_max_steps=can.limit_max_steps,
        require_upfront_kudos=can.require_upfront_kudos,
        maintenance=worker.maintenance,
        models=can.models,
        blacklist=can.blacklist,
        priority_user_ids=can.priority_user_ids,
        refused_by_bridge=post_processors.refused_by_bridge(can.bridge_agent),
        refused_by_worker=post_processors.refused_by_worker(can.post_processors),
    )


def worker_payload(request: Candidate, count: int, seed: int) -> dict[str, Any]:
    """The ``payload`` of a pop: the request's settings in the worker's field names."""
    payload = {k: v for k, v in request.params.items() if k not in ("steps", "n") and v is not None}
    if not payload.get("hypernetworks"):
        payload.pop("hypernetworks", None)  # an OpenHorde extension: AI Horde workers never see an empty one
    payload.setdefault("clip_skip", DEFAULT_CLIP_SKIP)
    payload.update(
        prompt=request.prompt,
        ddim_steps=request.params["steps"],
        n_iter=count,
        seed=str(seed),
        use_nsfw_censor=request.censor_nsfw and not request.nsfw,
    )
    return payload


def handout_terms(worker: WorkerState, amount: int, fixed_lease: int | None, now: float) -> HandoutTerms:
    """The rules of ``safe_amount`` and ``job_ttl_seconds`` as numbers, for the pop's one statement on PostgreSQL,
    which applies them in SQL (``storage/repositories/handouts.py``)."""
    can = worker.capabilities
    return HandoutTerms(
        amount=amount,
        batch_budget=(can.max_pixels / BATCH_PIXELS_DIVISOR) * amount,
        post_processor_weight=POST_PROCESSOR_BATCH_WEIGHT,
        lease_fixed=fixed_lease,
        lease_min=MIN_JOB_TTL_SECONDS,
        lease_slow_factor=EXTRA_SLOW_LEASE_FACTOR if can.extra_slow_worker else 1,
        default_model=can.models[0] if can.models else None,
        job_ids=tuple(str(uuid.uuid4()) for _ in range(amount)),
        worker_id=worker.id,
        worker_name=worker.name,
        now=now,
    )


async def _take(
    store: Store, ctx: HordeContext, worker: WorkerState, side: WorkerSide, amount: int, now: float
) -> Taken | None:
    """Find the best request ``side`` can serve and hand out up to ``amount`` of its images: one statement on
    PostgreSQL; on SQLite (and for a worker with priority users) a find, the batch and lease worked out here,
    then the take."""
    fixed_lease = ctx.settings.queue.job_lease_seconds
    if store.handouts.takes_in_one_statement(side):
        return await store.handouts.find_and_take(side, handout_terms(worker, amount, fixed_lease, now))
    request = await store.handouts.find(side)
    if request is None:
        return None
    count = safe_amount(amount, request, worker.capabilities.max_pixels)
    model = request.model or worker.capabilities.models[0]
    first_index = request.n_total - request.n_waiting
    jobs = tuple(
        NewJob(str(uuid.uuid4()), job_seed(request.seed, request.seed_variation, first_index + i)) for i in range(count)
    )
    ttl = job_ttl_seconds(request, worker, fixed_lease)
    await store.handouts.take(request.id, jobs, worker.id, worker.name, model, now, now + ttl)
    return Taken(request, model, ttl, jobs)


async def _take_next(
    store: Store, ctx: HordeContext, worker: WorkerState, side: WorkerSide, amount: int, now: float
) -> tuple[Taken | None, dict[str, int]]:
    """The jobs handed out, or none and why the queue's head did not fit: from memory when this worker found
    nothing last time and nothing has joined its models' queues since (``domain/queue/idle.py``)."""
    memo_key = (worker.id, worker.digest, side.owner_trusted, side.fast, side.maintenance)
    models = worker.capabilities.models
    remembered = ctx.idle.still_empty(memo_key, models, now)
    if remembered is not None:
        return None, remembered
    moment = ctx.idle.moment_of(models)  # before the query: an image joining during it is not missed
    taken = await _take(store, ctx, worker, side, amount, now)
    if taken is not None:
        return taken, {}
    skipped = await store.handouts.skipped(side)
    for delay in CONTENDED_RETRY_DELAYS:
        if not skipped.contended:
            break
        await asyncio.sleep(delay)
        taken = await _take(store, ctx, worker, side, amount, now)
        if taken is not None:
            return taken, {}
        skipped = await store.handouts.skipped(side)
    if not skipped.contended:  # a request held by a concurrent pop may be free again at once: ask next time
        ctx.idle.remember_empty(memo_key, models, moment, skipped.counts, now)
    return None, skipped.counts


async def pop(
    store: Store,
    ctx: HordeContext,
    user: Account,
    check_in: workers.CheckIn,
    amount: int = 1,
    now: float | None = None,
) -> PopResult:
    """Check the worker in and hand it the best job it can do, if any."""
    moment = now or time.time()
    role_effects.check_can_pop(user)
    worker = await workers.check_in(store, ctx, user, check_in, moment)
    if worker.paused:
        return PopResult(handed_out=None, worker_id=worker.id)
    side = worker_side(worker, user)
    taken, skipped = await _take_next(store, ctx, worker, side, min(amount, MAX_AMOUNT), moment)
    if taken is None:
        if worker.maintenance:
            raise WorkerMaintenance(worker.maintenance_msg or "This worker is in maintenance mode.")
        return PopResult(handed_out=None, skipped=skipped, worker_id=worker.id)
    request, jobs = taken.request, taken.jobs
    for job in jobs:
        events.announce(store, request.id, events.STARTED, job.id)  # streams see the hand-out
    blobs = ctx.blobs
    return PopResult(
        handed_out=HandedOut(
            request_id=request.id,
            job_ids=[job.id for job in jobs],
            model=taken.model,
            ttl=taken.ttl,
            payload=worker_payload(request, len(jobs), jobs[0].seed),
            source_processing=request.source_processing,
            source_image_url=blobs.presign("GET", request.source_image_key, moment)
            if request.source_image_key
            else None,
            source_mask_url=blobs.presign("GET", request.source_mask_key, moment) if request.source_mask_key else None,
            upload_urls=[blobs.presign("PUT", upload_key(job.id), moment) for job in jobs],
        ),
        worker_id=worker.id,
    )
