"""What ``/generate/check`` and ``/generate/status`` report about a request."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from openhorde.domain.context import HordeContext
from openhorde.domain.kudos.ledger import cents_to_kudos
from openhorde.domain.queue.availability import QueueView, progress
from openhorde.domain.queue.states import RequestState
from openhorde.errors import RequestNotFound
from openhorde.storage.repositories.statuses import RequestCounters as RequestCounters  # the domain's names too
from openhorde.storage.repositories.statuses import RequestJob as RequestJob
from openhorde.storage.store import Store


@dataclass(frozen=True)
class DeliveredImage:
    """One finished image of a request, as a client sees it."""

    job_id: str
    worker_id: str
    worker_name: str
    model: str
    seed: int
    censored: bool
    img: str
    gen_metadata: list[dict[str, Any]]


@dataclass(frozen=True)
class RequestStatus:
    """The counters and estimates of a request, and its images when asked for."""

    finished: int
    processing: int
    restarted: int
    waiting: int
    done: bool
    faulted: bool
    wait_time: int
    queue_position: int
    kudos: float
    is_possible: bool
    eligible_workers: int
    eligible_worker_threads: int
    might_stall: bool
    shared: bool
    fault_reason: str | None
    generations: list[DeliveredImage] = field(default_factory=list)


async def _image_reference(ctx: HordeContext, request: RequestCounters, job: RequestJob, now: float) -> str:
    assert job.image_key is not None
    if request.r2:
        return ctx.blobs.presign("GET", job.image_key, now)
    return base64.b64encode(await ctx.blobs.get(job.image_key)).decode()


async def delivered_image(ctx: HordeContext, request: RequestCounters, job: RequestJob, now: float) -> DeliveredImage:
    """A finished job as the client sees it: its image as a URL (or base64 when ``r2`` is off)."""
    return DeliveredImage(
        job_id=job.id,
        worker_id=job.worker_id or "",
        worker_name=job.worker_name,
        model=job.model,
        seed=job.seed,
        censored=job.censored,
        img=await _image_reference(ctx, request, job, now),
        gen_metadata=list(job.gen_metadata),
    )


async def check_status(
    store: Store, ctx: HordeContext, view: QueueView, request_id: str, now: float | None = None
) -> RequestStatus:
    """The status of a request without its images: its counters from memory while it has not changed
    (``QueueView``), its place in the queue from the queue snapshot."""
    moment = now or time.time()
    counters = view.cached_counters(request_id, moment)
    if counters is None:
        counters = await get_counters(store, request_id)
        view.remember_counters(counters, moment)
    return await request_status(store, ctx, view, counters, now=moment)


async def full_status(
    store: Store,
    ctx: HordeContext,
    view: QueueView,
    request_id: str,
    now: float | None = None,
    remembered: bool = False,
) -> RequestStatus:
    """The status of a request with its delivered images; its counters and finished jobs come in one read. With
    ``remembered`` (a client's status call), from memory while the request has not changed
    (``QueueView.cached_status``); not for a caller that just changed the request or read it anew."""
    moment = now or time.time()
    found = view.cached_status(request_id, moment) if remembered else None
    if found is None and is_request_id(request_id):
        found = await store.statuses.counters_and_finished_jobs(request_id)
    if found is None:
        raise _not_found(request_id)
    counters, jobs = found
    return await request_status(store, ctx, view, counters, finished_jobs=jobs, now=moment)


def _not_found(request_id: str) -> RequestNotFound:
    return RequestNotFound(f"Request with ID '{request_id}' not found. It may have expired or been removed.")


async def get_counters(store: Store, request_id: str) -> RequestCounters:
    """The status columns of a request; ``RequestNotFound`` if it does not exist (any more)."""
    counters = await store.statuses.counters(request_id) if is_request_id(request_id) else None
    if counters is None:
        raise _not_found(request_id)
    return counters


def is_request_id(value: str) -> bool:
    """Whether ``value`` looks like a request id (a UUID)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def request_status(
    store: Store,
    ctx: HordeContext,
    view: QueueView,
    request: RequestCounters,
    finished_jobs: list[RequestJob] | None = None,
    now: float | None = None,
) -> RequestStatus:
    """The status of a request; ``finished_jobs`` (its done jobs, read by the caller) adds its delivered images
    (URLs, or base64 when ``r2`` is off)."""
    moment = now or time.time()
    place = await progress(store, view, request, moment)
    images = [await delivered_image(ctx, request, job, moment) for job in finished_jobs or ()]
    state = RequestState(request.state)
    return RequestStatus(
        finished=request.n_finished,
        processing=request.n_processing,
        restarted=request.n_faulted,
        waiting=max(request.n_waiting, 0),
        done=state != RequestState.QUEUED,
        faulted=state == RequestState.FAULTED,
        wait_time=place.wait_time,
        queue_position=place.queue_position,
        kudos=cents_to_kudos(request.charged_cents),
        is_possible=place.is_possible,
        eligible_workers=place.eligible_workers,
        eligible_worker_threads=place.eligible_worker_threads,
        might_stall=place.might_stall,
        shared=request.shared,
        fault_reason=request.fault_reason,
        generations=images,
    )
