"""Receiving results: ``POST /generate/submit``.

A submit claims its job with one conditional update (``processing`` → ``done``, only for a job of one of the
caller's workers), so a second submit of the same job finds nothing to claim and is refused with
``DuplicateGen``. The settlement that pays the worker's owner and charges the requester is then recorded in the
same transaction, once, under the job's id (``storage/repositories/deliveries.py``). On PostgreSQL an uploaded
image usually takes one statement for both (``_claim_and_settle``: the settlement's rules bound as numbers); when
it claims nothing, the two steps below say why or take the cases it leaves to them. A faulted job takes the
slower path of ``_record_fault``: it is rare, and puts images back in the queue.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from typing import Any

from openhorde.domain import images, webhooks
from openhorde.domain.accounts import ANONYMOUS_USER_ID
from openhorde.domain.context import HordeContext
from openhorde.domain.kudos import escrow, ledger
from openhorde.domain.queue import events
from openhorde.domain.queue.availability import QueueView
from openhorde.domain.queue.blob_keys import image_key, job_of_upload_key, upload_key
from openhorde.domain.queue.leases import count_abort, return_to_queue
from openhorde.domain.queue.states import JobState, RequestState, job_transition, request_transition
from openhorde.errors import (
    AbortedGen,
    BlobNotFound,
    DuplicateGen,
    HordeError,
    ImageValidationFailed,
    InvalidJobID,
    UploadClosed,
    WrongCredentials,
)
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.deliveries import Claim, Delivered, Delivery, DeliveryTerms, Settlement
from openhorde.storage.store import Store

SPEED_SMOOTHING = 0.2
"""Weight of the newest sample in a worker's moving-average speed."""
CENSORED_STATES = frozenset({"censored", "csam"})
MEGA = 1_000_000


@dataclass
class Submission:
    """A worker's result for one job."""

    job_id: str
    generation: str | None
    state: str = "ok"
    seed: int | None = None
    censored: bool = False
    gen_metadata: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_censored(self) -> bool:
        """Whether the worker censored the image (its state, its flag or a censorship metadata entry)."""
        return (
            self.state in CENSORED_STATES
            or self.censored
            or any(m.get("type") == "censorship" for m in self.gen_metadata)
        )


def _inline_image(generation: str, max_bytes: int, max_pixels: int) -> bytes:
    """The image sent as base64 in the submit, checked and as WebP (Pillow work: called in a worker thread)."""
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
        raise ImageValidationFailed(
            "No image was uploaded for this job: PUT it to r2_upload first or send it as base64."
        ) from exc


@dataclass(frozen=True)
class Settled:
    """What a submit did: the reward in kudos and the request it belonged to."""

    reward: float
    request_id: str


async def submit(
    store: Store,
    ctx: HordeContext,
    user: Account,
    submission: Submission,
    now: float | None = None,
    view: QueueView | None = None,
) -> Settled:
    """Record a worker's result and settle its kudos; ``view``: this process's, to keep the request's new counters
    (and, after its first image, its finished job) for its next check and status when the one statement returned
    them."""
    moment = now or time.time()
    if submission.state == "faulted":
        return await _record_fault(store, ctx, user, submission, moment)
    inline = None
    if submission.generation not in (None, "", "R2"):
        settings = ctx.settings
        inline = await asyncio.to_thread(
            _inline_image,
            str(submission.generation),
            settings.blobs.max_upload_bytes,
            settings.limits.max_source_pixels,
        )
    censored = submission.is_censored
    claim = Claim(
        done=job_transition(JobState.DONE),
        job_id=submission.job_id,
        user_id=user.id,
        now=moment,
        image_key=image_key(submission.job_id),
        censored=censored,
        seed=submission.seed,
        gen_metadata=submission.gen_metadata,
    )
    if inline is None and store.deliveries.settles_at_once:
        settled = await _claim_and_settle(store, ctx, claim, view)
        if settled is not None:
            return settled
    delivery = await store.deliveries.claim(claim)
    if delivery is None:
        raise await _refusal(store, user, submission.job_id)
    await _deliver_image(ctx, delivery.job_id, inline)
    settlement = await _settlement(store, ctx, delivery, censored, moment)
    await store.deliveries.settle(settlement)
    _delivered(store, ctx, delivery, settlement.charge_cents, moment)
    if delivery.webhook is not None:
        seed = submission.seed if submission.seed is not None else delivery.seed
        await webhooks.image_finished(store, ctx, delivery, seed, censored, submission.gen_metadata, moment)
    return Settled(ledger.cents_to_kudos(delivery.price_cents), delivery.request_id)


async def _claim_and_settle(store: Store, ctx: HordeContext, claim: Claim, view: QueueView | None) -> Settled | None:
    """PostgreSQL, an image uploaded to ``r2_upload``: the claim and the settlement in one statement, the image
    copied to its delivered key first (so a missing upload claims nothing). ``None`` when it did nothing: the
    caller's claim then tells why, or takes the cases the statement leaves to it (a webhook, an owner this reward
    trusts).

    The copy never replaces an image: one that is there was delivered (a second submit must not replace it with
    what a PUT racing the first wrote to the upload afterwards), or was left by an attempt that claimed nothing,
    which the caller's claim then replaces."""
    job_id = claim.job_id
    try:
        if not await ctx.blobs.copy_if_absent(upload_key(job_id), claim.image_key):
            return None
    except BlobNotFound:
        return None  # the caller's claim says whose job it is, or refuses the missing image
    economy = ctx.settings.economy
    trust_after = economy.trust_after_kudos
    terms = DeliveryTerms(
        anonymous_id=ANONYMOUS_USER_ID,
        escrow_share=economy.escrow_share,
        trust_after_cents=None if trust_after is None else ledger.kudos_to_cents(trust_after),
        trust_after_images=economy.trust_after_images,
        trust_min_age_seconds=economy.trust_min_account_age_seconds,
        speed_smoothing=SPEED_SMOOTHING,
    )
    mark = view.mark() if view is not None else None
    delivered = await store.deliveries.claim_and_settle(claim, request_transition(RequestState.DONE), terms)
    if delivered is None:
        return None
    _delivered(store, ctx, delivered, delivered.charge_cents, claim.now)
    if view is not None and mark is not None:
        # Its first image: this job is all the request has finished, so its next status can answer from memory too.
        finished = (delivered.job,) if delivered.counters.n_finished == 1 else None
        store.after_commit(functools.partial(view.remember_written, delivered.counters, mark, claim.now, finished))
    return Settled(ledger.cents_to_kudos(delivered.price_cents), delivered.request_id)


def _delivered(store: Store, ctx: HordeContext, job: Delivery | Delivered, charge_cents: int, now: float) -> None:
    """What follows a settled delivery in this process: the counters written in batches, and its event."""
    if charge_cents == 0 and job.requester_id != job.owner_id:  # the requester's row was not touched
        ctx.usage.add(job.requester_id, job.things / MEGA)  # added later, in a batch
    ctx.image_stats.add(job.model, job.things, now)  # written in a batch, as usage is
    events.announce(store, job.request_id, events.IMAGE, job.job_id)  # streams and Prefer: wait


async def _refusal(store: Store, user: Account, job_id: str) -> HordeError:
    """Why a job could not be claimed: unknown, another account's, already submitted, or no longer processing."""
    found = await store.deliveries.state_and_owner(job_id)
    if found is None:
        return InvalidJobID(f"Processing generation with ID {job_id} does not exist.")
    state, owner_id = found
    if owner_id != user.id:
        return WrongCredentials("This job was handed to a worker of another account.")
    if state == JobState.DONE:
        return DuplicateGen("This job has already been submitted.")
    return AbortedGen()


async def _settlement(store: Store, ctx: HordeContext, delivery: Delivery, censored: bool, now: float) -> Settlement:
    """Who gets and pays what for a delivered image: the owner the price (part held in escrow while untrusted),
    the requester the charge (nothing when anonymous or censored)."""
    settings = ctx.settings
    price = delivery.price_cents
    held, track_escrow = 0, False
    if not delivery.owner_trusted and price > 0:
        earned, delivered = delivery.escrow_earned_cents + price, delivery.escrow_images + 1
        if escrow.qualifies_for_trust(settings, delivery.owner_created_at, earned, delivered, now):
            await escrow.trust_automatically(store, delivery.owner_id, earned, delivered, now)
        else:
            held, track_escrow = escrow.held_part(price, settings.economy.escrow_share), True
    elapsed = max(now - delivery.started_at, 0.001)
    sample = delivery.things / elapsed
    previous = delivery.worker_speed_pps
    speed = sample if previous is None else (1 - SPEED_SMOOTHING) * previous + SPEED_SMOOTHING * sample
    charge = 0 if censored or delivery.requester_id == ANONYMOUS_USER_ID else delivery.charge_cents
    return Settlement(
        delivery=delivery,
        image_key=image_key(delivery.job_id),
        now=now,
        owner_share_cents=price - held,
        held_cents=held,
        track_escrow=track_escrow,
        charge_cents=charge,
        speed_pps=speed,
        megapixelsteps=delivery.things / MEGA,
        sharedkey_cents=delivery.charge_cents if delivery.sharedkey_id is not None and not censored else 0,
        keep_in_gallery=delivery.gallery and not censored,
        memo=f"image of request {delivery.request_id} by worker {delivery.worker_name}",
        request_done=request_transition(RequestState.DONE),
    )


async def _record_fault(store: Store, ctx: HordeContext, user: Account, submission: Submission, now: float) -> Settled:
    """A worker's report that it could not make the image: the job faults and its image waits again."""
    job = await store.queue.job_holder(submission.job_id)
    if job is None:
        raise InvalidJobID(f"Processing generation with ID {submission.job_id} does not exist.")
    if job.owner_id != user.id:  # also once the worker was deleted
        raise WrongCredentials("This job was handed to a worker of another account.")
    if job.state == JobState.DONE:
        raise DuplicateGen("This job has already been submitted.")
    reason = "; ".join(_fault_text(m) for m in submission.gen_metadata) or "the worker reported a fault"
    faulted = job_transition(JobState.FAULTED)
    if await store.queue.fault_job(faulted, job.job_id, now, reason[:1000], submission.gen_metadata):
        await return_to_queue(store, job.request_id, reason, now)
        max_aborts = ctx.settings.economy.worker_max_aborts_per_hour
        await count_abort(store, [job.worker_id], now, max_aborts)  # too many: maintenance
    return Settled(0.0, job.request_id)


def _fault_text(entry: dict[str, Any]) -> str:
    """One metadata entry as a reason: its ``ref`` when it says "see_ref", else ``type: value``."""
    if entry.get("value") == "see_ref" and entry.get("ref"):
        return str(entry["ref"])
    text = f"{entry.get('type', '')}: {entry.get('value', '')}"
    return f"{text} ({entry['ref']})" if entry.get("ref") else text


async def check_upload_open(store: Store, key: str) -> None:
    """Refuse an upload to ``key`` unless it is the upload key of a job that is still being processed.

    A job's image is final once submitted: after that (or after the job faulted, expired or was aborted) its
    upload URL, still valid by its signature, must not replace anything."""
    job_id = job_of_upload_key(key)
    found = await store.deliveries.state_and_owner(job_id) if job_id is not None else None
    if found is None or found[0] != JobState.PROCESSING:
        raise UploadClosed()
