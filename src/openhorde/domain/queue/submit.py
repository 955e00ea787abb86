"""Receiving results: ``POST /generate/submit``.

A submit claims its job with one conditional update (``processing`` → ``done``), so a
second submit of the same job finds nothing to claim and is refused with ``DuplicateGen``;
the settlement that pays the worker and charges the requester is recorded in the same
transaction, once, under the job's id.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain import gallery, images, sharedkeys, webhooks
from openhorde.domain.accounts import ANONYMOUS_USER_ID
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos import escrow, ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.domain.queue import events
from openhorde.domain.queue.leases import count_abort, return_to_queue
from openhorde.domain.queue.matching import image_key, job_of_upload_key, upload_key
from openhorde.domain.queue.states import JobState, RequestState
from openhorde.errors import (
    AbortedGen,
    BadRequest,
    BlobNotFound,
    DuplicateGen,
    InvalidJobID,
    UploadClosed,
    WrongCredentials,
)
from openhorde.storage import job_queries, ledger_queries, queue_queries
from openhorde.storage.tables import Job, Request, User, Worker

SPEED_SMOOTHING = 0.2
"""Weight of the newest sample in a worker's moving-average speed."""
CENSORED_STATES = frozenset({"censored", "csam"})


@dataclass
class Submission:
    """A worker's result for one job."""

    job_id: str
    generation: str | None
    state: str = "ok"
    seed: int | None = None
    censored: bool = False
    gen_metadata: list[dict[str, Any]] = field(default_factory=list)


async def _load_job(session: AsyncSession, job_id: str) -> tuple[Job, Request, Worker | None]:
    found = await job_queries.job_with_request(session, job_id)
    if found is None:
        raise InvalidJobID(f"Processing generation with ID {job_id} does not exist.")
    return found


def _refuse_finished(job: Job, submission: Submission) -> float:
    """The answer to a submit for a job that is no longer processing."""
    if job.state == JobState.DONE:
        raise DuplicateGen("This job has already been submitted.")
    if submission.state == "faulted":
        return 0.0
    raise AbortedGen()


def _inline_image(generation: str | None, max_bytes: int, max_pixels: int) -> bytes | None:
    """The image sent as base64 in the submit, checked and as WebP; ``None`` when it was uploaded (R2).

    Pillow work: called in a worker thread."""
    if generation in (None, "", "R2"):
        return None
    raw = images.decode_base64(generation, "generation", max_bytes)
    return images.check_result_upload(raw, max_bytes, max_pixels)


async def _deliver_image(ctx: HordeContext, job_id: str, inline: bytes | None) -> None:
    """Put the job's image at its delivered key: the one sent inline, else a copy of the upload.

    Called after the job was claimed, so of two racing submits only the one that claimed writes, and a PUT
    to the upload URL after this no longer reaches the delivered image."""
    key = image_key(job_id)
    if inline is not None:
        await ctx.blobs.put(key, inline)
        return
    try:
        await ctx.blobs.copy(upload_key(job_id), key)
    except BlobNotFound as exc:
        raise BadRequest(
            "No image was uploaded for this job: PUT it to r2_upload first or send it as base64.",
            rc="ImageValidationFailed",
        ) from exc


@dataclass(frozen=True)
class Settled:
    """What a submit did: the reward in kudos and the request it belonged to."""

    reward: float
    request_id: str


async def submit(
    session: AsyncSession, ctx: HordeContext, user: User, submission: Submission, now: float | None = None
) -> Settled:
    """Record a worker's result and settle its kudos."""
    moment = now or time.time()
    job, request, worker = await _load_job(session, submission.job_id)
    if worker is None or worker.user_id != user.id:
        raise WrongCredentials("This job was handed to a worker of another account.")
    if job.state != JobState.PROCESSING:
        return Settled(_refuse_finished(job, submission), request.id)
    if submission.state == "faulted":
        max_aborts = ctx.settings.worker_max_aborts_per_hour
        return Settled(await _record_fault(session, job, submission, moment, max_aborts), request.id)

    settings = ctx.settings
    inline = await asyncio.to_thread(
        _inline_image, submission.generation, settings.max_upload_bytes, settings.max_source_pixels
    )
    delivered_key = image_key(job.id)
    censored = (
        submission.state in CENSORED_STATES
        or submission.censored
        or any(m.get("type") == "censorship" for m in submission.gen_metadata)
    )
    claimed_seed = submission.seed if submission.seed is not None else job.seed
    claimed = await job_queries.claim_done(
        session,
        job.id,
        now=moment,
        image_key=delivered_key,
        censored=censored,
        seed=claimed_seed,
        gen_metadata=submission.gen_metadata,
        reward_cents=request.price_cents,
    )
    if not claimed:
        raise DuplicateGen("This job has already been submitted.")
    await _deliver_image(ctx, job.id, inline)
    if request.gallery and not censored:
        await gallery.keep_image(session, request, job, worker, delivered_key, claimed_seed, moment)
    charged = await _settle(session, job, request, worker, censored, moment, ctx)
    if await job_queries.finish_image(session, request.id, charged, moment) == RequestState.DONE:
        await queue_queries.leave_model_queues(session, [request.id])
    events.announce(session, request.id, events.IMAGE, job.id)  # streams and Prefer: wait (issue 6, part A)
    await webhooks.image_finished(  # its webhook events, if any (issue 6, part B)
        session, ctx, request, job, delivered_key, claimed_seed, censored, submission.gen_metadata, moment
    )
    await _record_speed(session, worker, request, moment - job.started_at, request.price_cents)
    return Settled(ledger.cents_to_kudos(request.price_cents), request.id)


async def _record_fault(
    session: AsyncSession, job: Job, submission: Submission, now: float, max_aborts: int | None = None
) -> float:
    reason = "; ".join(_fault_text(m) for m in submission.gen_metadata) or "the worker reported a fault"
    if await job_queries.claim_faulted(session, job.id, now, reason[:1000], submission.gen_metadata):
        await return_to_queue(session, job.request_id, reason, now)
        await count_abort(session, [job.worker_id], now, max_aborts)  # too many: maintenance (part D2)
    return 0.0


async def _settle(
    session: AsyncSession, job: Job, request: Request, worker: Worker, censored: bool, now: float, ctx: HordeContext
) -> int:
    """Pay the worker's owner the image's price; charge the requester (not below 0; censored images are free)."""
    balances = await ledger_queries.lock_users(session, [request.user_id, worker.user_id])
    # An untrusted owner's reward is split between the balance and escrow (domain/kudos/escrow.py); the first
    # posting is what reaches the owner's balance.
    reward = await escrow.owner_reward(
        session, ctx.settings, worker.user_id, request.price_cents, ctx.settings.escrow_share, 1, now
    )
    charge = 0 if censored or request.user_id == ANONYMOUS_USER_ID else request.charge_cents
    charge = min(
        charge,
        max(0, balances[request.user_id] + (reward[0].amount_cents if request.user_id == worker.user_id else 0)),
    )
    await ledger.record(
        session,
        TransactionKind.GENERATION,
        job.id,
        [
            Posting(SystemAccount.MINT, -request.price_cents),
            *reward,
            Posting(request.user_id, -charge),
            Posting(SystemAccount.BURN, charge),
        ],
        memo=f"image of request {request.id} by worker {worker.name}",
        now=now,
    )
    await job_queries.count_delivery(session, worker.user_id, request.user_id, request.things / 1_000_000)
    await sharedkeys.record_use(session, request, censored)  # the shared key it came with, if any (part C)
    return charge


async def _record_speed(
    session: AsyncSession, worker: Worker, request: Request, seconds: float, reward_cents: int
) -> None:
    sample = request.things / max(seconds, 0.001)
    speed = sample if worker.speed_pps is None else (1 - SPEED_SMOOTHING) * worker.speed_pps + SPEED_SMOOTHING * sample
    await job_queries.record_delivery(session, worker.id, speed, request.things / 1_000_000, reward_cents)


def _fault_text(entry: dict[str, Any]) -> str:
    """One metadata entry as a reason: its ``ref`` when it says "see_ref", else ``type: value``."""
    if entry.get("value") == "see_ref" and entry.get("ref"):
        return str(entry["ref"])
    text = f"{entry.get('type', '')}: {entry.get('value', '')}"
    return f"{text} ({entry['ref']})" if entry.get("ref") else text


async def check_upload_open(session: AsyncSession, key: str) -> None:
    """Refuse an upload to ``key`` unless it is the upload key of a job that is still being processed.

    A job's image is final once submitted: after that (or after the job faulted, expired or was aborted) its
    upload URL, still valid by its signature, must not replace anything."""
    job_id = job_of_upload_key(key)
    state = await job_queries.job_state(session, job_id) if job_id is not None else None
    if state != JobState.PROCESSING:
        raise UploadClosed()
