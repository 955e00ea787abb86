"""Alchemists' side: ``POST /interrogate/pop`` hands out forms with a lease, ``/interrogate/submit`` takes results.

An alchemist is a worker of type ``interrogation``, registered by its first pop like an image worker
(``workers.check_in``). A pop leases forms of its owner and priority users first, then anyone's, best priority
first; a submit claims the form with one conditional update and settles it in the same transaction: the
alchemist's owner earns the form's reward (part in escrow while untrusted), the requester pays its charge (never
below a zero balance; nothing when anonymous) and the horde burns the difference.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from openhorde.domain import images, webhooks, workers
from openhorde.domain.accounts import ANONYMOUS_USER_ID, Account
from openhorde.domain.context import HordeContext
from openhorde.domain.interrogations.forms import (
    FAST_WORKER_FORMS_PER_SECOND,
    FORM_LEASE_SECONDS,
    MAX_FORM_ABORTS,
    FormState,
    form_of_upload_key,
    form_transition,
    is_post_processor,
    result_key,
    upload_key,
)
from openhorde.domain.kudos import escrow, ledger
from openhorde.domain.kudos.ledger import Posting, SystemAccount, TransactionKind
from openhorde.domain.moderation import role_effects
from openhorde.domain.queue.leases import count_abort
from openhorde.domain.worker_cache import WorkerState
from openhorde.errors import (
    AbortedGen,
    BlobNotFound,
    DuplicateGen,
    HordeError,
    ImageValidationFailed,
    InvalidJobID,
    UploadClosed,
    ValidationFailed,
    WorkerMaintenance,
    WrongCredentials,
)
from openhorde.storage.repositories.interrogations import DeliveredForm, HandedForm, Offer
from openhorde.storage.store import Store

MAX_POP_AMOUNT = 20
"""The most forms one pop hands out."""
SPEED_SMOOTHING = 0.2
"""Weight of the newest sample in an alchemist's moving-average speed."""
MAX_RESULT_CHARS = 64 * 1024
"""Largest result of a form that is not an image, as JSON (a caption, tags, a verdict): ours; the body limit
alone would let a worker store megabytes per form."""


@dataclass(frozen=True)
class PoppedForm:
    """A form handed to an alchemist, with the URLs it downloads the image from and uploads an image to."""

    id: str
    name: str
    payload: dict[str, Any] | None
    source_image_url: str
    upload_url: str | None


@dataclass(frozen=True)
class AlchemyPop:
    """What a pop answers: the forms handed out, or why none were (``skipped``)."""

    forms: list[PoppedForm]
    skipped: dict[str, int] = field(default_factory=dict)
    worker_id: str | None = None


def _offer(worker: WorkerState, owner: Account, only_users: tuple[int, ...] | None) -> Offer:
    can = worker.capabilities
    speed = worker.speed_pps or 0.0
    return Offer(
        forms=can.forms,
        max_tiles=can.max_tiles,
        fast=speed >= FAST_WORKER_FORMS_PER_SECOND,
        trusted=escrow.is_trusted(owner),
        only_users=only_users,
    )


async def pop(
    store: Store,
    ctx: HordeContext,
    user: Account,
    check_in: workers.CheckIn,
    amount: int = 1,
    now: float | None = None,
) -> AlchemyPop:
    """Check the alchemist in and lease it up to ``amount`` forms it offers, its owner's and priority users' first.

    A paused alchemist gets nothing; one in maintenance gets only its owner's forms (and ``WorkerMaintenance``
    when there are none, as the reference answers).
    """
    moment = now or time.time()
    role_effects.check_can_pop(user)
    worker = await workers.check_in(store, ctx, user, check_in, moment)
    if worker.paused:
        return AlchemyPop(forms=[], worker_id=worker.id)
    limit = max(1, min(amount, MAX_POP_AMOUNT))
    processing = form_transition(FormState.PROCESSING)
    deadline = moment + FORM_LEASE_SECONDS
    preferred = (user.id,) if worker.maintenance else (user.id, *worker.capabilities.priority_user_ids)
    handed = await store.interrogations.hand_out(
        processing, _offer(worker, user, preferred), limit, worker.id, moment, deadline
    )
    if len(handed) < limit and not worker.maintenance:
        handed += await store.interrogations.hand_out(
            processing, _offer(worker, user, None), limit - len(handed), worker.id, moment, deadline
        )
    if not handed:
        if worker.maintenance:
            raise WorkerMaintenance(worker.maintenance_msg or "This worker is in maintenance mode.")
        return AlchemyPop(forms=[], skipped=await _skipped(store, worker, user), worker_id=worker.id)
    await store.interrogations.extend(
        [f.interrogation_id for f in handed], moment + ctx.settings.blobs.result_retention_seconds
    )
    return AlchemyPop(forms=[_popped(ctx, form, moment) for form in handed], worker_id=worker.id)


def _popped(ctx: HordeContext, form: HandedForm, now: float) -> PoppedForm:
    upload = ctx.blobs.presign("PUT", upload_key(form.id), now) if is_post_processor(form.name) else None
    return PoppedForm(form.id, form.name, form.payload, ctx.blobs.presign("GET", form.source_key, now), upload)


async def _skipped(store: Store, worker: WorkerState, owner: Account) -> dict[str, int]:
    """Why an alchemist found nothing, as the reference reports it: forms only trusted workers may take."""
    if escrow.is_trusted(owner):
        return {}
    untrusted = await store.interrogations.skipped_untrusted(worker.capabilities.forms)
    return {"untrusted": untrusted} if untrusted else {}


@dataclass(frozen=True)
class FormResult:
    """An alchemist's result for one form: ``result`` per form kind (a post-processor's image as ``"R2"`` once
    uploaded, or as base64), and ``state`` ok or faulted."""

    form_id: str
    result: dict[str, Any]
    state: str = "ok"


async def submit(
    store: Store, ctx: HordeContext, user: Account, submitted: FormResult, now: float | None = None
) -> float:
    """Record an alchemist's result and settle its kudos; returns the reward in kudos (0 for a fault)."""
    moment = now or time.time()
    if submitted.state == "faulted":
        await _record_fault(store, ctx, user, submitted.form_id, moment)
        return 0.0
    holder = await store.interrogations.holder(submitted.form_id)
    if holder is None:
        raise InvalidJobID(f"Interrogation form with ID {submitted.form_id} does not exist.")
    inline = None
    stored_result = submitted.result
    if len(json.dumps(stored_result)) > MAX_RESULT_CHARS and not is_post_processor(holder.name):
        raise ValidationFailed(f"A form's result is limited to {MAX_RESULT_CHARS} characters of JSON.")
    if is_post_processor(holder.name):
        image = submitted.result.get(holder.name, "R2")
        if isinstance(image, str) and image not in ("", "R2"):
            inline = await asyncio.to_thread(_inline_image, ctx, image)
        stored_result = {holder.name: "R2"}  # the status presigns the delivered image's URL
    delivered = await store.interrogations.claim(
        form_transition(FormState.DONE), submitted.form_id, user.id, stored_result
    )
    if delivered is None:
        raise await _refusal(store, user, submitted.form_id)
    if is_post_processor(delivered.name):
        await _deliver_image(ctx, delivered.id, inline)
    await _settle(store, ctx, delivered, moment)
    await store.interrogations.extend(
        [delivered.interrogation_id], moment + ctx.settings.blobs.result_retention_seconds
    )
    await _webhook(store, ctx, delivered, stored_result, moment)
    return ledger.cents_to_kudos(delivered.reward_cents)


def _inline_image(ctx: HordeContext, data: str) -> bytes:
    """A post-processed image sent as base64, checked and as WebP (Pillow work: called in a worker thread)."""
    settings = ctx.settings
    raw = images.decode_base64(data, "post-processed image", settings.blobs.max_upload_bytes)
    return images.check_result_upload(raw, settings.blobs.max_upload_bytes, settings.limits.max_source_pixels)


async def _deliver_image(ctx: HordeContext, form_id: str, inline: bytes | None) -> None:
    """Put a post-processed image at its delivered key: the one sent inline, else a copy of the upload."""
    if inline is not None:
        await ctx.blobs.put(result_key(form_id), inline)
        return
    try:
        await ctx.blobs.copy(upload_key(form_id), result_key(form_id))
    except BlobNotFound as exc:
        raise ImageValidationFailed(
            "No image was uploaded for this form: PUT it to r2_upload first or send it as base64."
        ) from exc


async def _settle(store: Store, ctx: HordeContext, form: DeliveredForm, now: float) -> None:
    """One ledger transaction: the owner earns the reward (minted), the requester pays the charge (burnt)."""
    worker = await workers.get_worker(store, form.worker_id)
    owner_id, requester_id = worker.user_id, form.requester_id
    balances = await store.accounts.lock(sorted({owner_id, requester_id}))
    settings = ctx.settings
    earned = await escrow.owner_reward(
        store, settings, owner_id, form.reward_cents, settings.economy.escrow_share, images=1, now=now
    )
    charge = 0 if requester_id == ANONYMOUS_USER_ID else form.charge_cents
    paid_now = sum(p.amount_cents for p in earned if p.account == owner_id) if owner_id == requester_id else 0
    charged = min(charge, max(0, balances.get(requester_id, 0) + paid_now))
    await ledger.record(
        store,
        TransactionKind.INTERROGATION,
        form.id,
        [
            Posting(SystemAccount.MINT, -form.reward_cents),
            *earned,
            Posting(requester_id, -charged),
            Posting(SystemAccount.BURN, charged),
        ],
        memo=f"{form.name} form of interrogation {form.interrogation_id} by worker {worker.name}",
        now=now,
    )
    elapsed = max(now - form.started_at, 0.001)
    await store.interrogations.count_delivery(worker.id, form.reward_cents, 1 / elapsed, SPEED_SMOOTHING)


async def _webhook(store: Store, ctx: HordeContext, form: DeliveredForm, result: dict[str, Any], now: float) -> None:
    """Queue the reference's per-form webhook event, when the interrogation has a webhook."""
    interrogation = await store.interrogations.get(form.interrogation_id)
    if interrogation is None or interrogation.webhook is None:
        return
    if is_post_processor(form.name):
        result = {form.name: ctx.blobs.presign("GET", result_key(form.id), now)}
    body = {
        "form": form.name,
        "state": FormState.DONE.value,
        "result": result,
        "worker_id": form.worker_id,
        "request": form.interrogation_id,
        "id": form.id,
        "kudos": ledger.cents_to_kudos(form.reward_cents),
    }
    await webhooks.form_finished(store, form.id, form.interrogation_id, interrogation.webhook, body, now)


async def _refusal(store: Store, user: Account, form_id: str) -> HordeError:
    """Why a form could not be claimed: unknown, another account's, already submitted, or taken back."""
    holder = await store.interrogations.holder(form_id)
    if holder is None:
        return InvalidJobID(f"Interrogation form with ID {form_id} does not exist.")
    if holder.owner_id != user.id:
        return WrongCredentials("This form was handed to a worker of another account.")
    if holder.state == FormState.DONE:
        return DuplicateGen("This form has already been submitted.")
    return AbortedGen("This form ran past its lease or was faulted; it went back to the queue.")


async def _record_fault(store: Store, ctx: HordeContext, user: Account, form_id: str, now: float) -> None:
    """An alchemist's report that it could not do a form: it waits again (or faults after too many aborts)."""
    holder = await store.interrogations.holder(form_id)
    if holder is None:
        raise InvalidJobID(f"Interrogation form with ID {form_id} does not exist.")
    if holder.owner_id != user.id:
        raise WrongCredentials("This form was handed to a worker of another account.")
    if holder.state == FormState.DONE:
        raise DuplicateGen("This form has already been submitted.")
    aborted = await store.interrogations.abort(
        form_transition(FormState.WAITING), form_transition(FormState.FAULTED), [form_id], MAX_FORM_ABORTS
    )
    if aborted:
        await count_abort(store, [holder.worker_id], now, ctx.settings.economy.worker_max_aborts_per_hour)


async def check_upload_open(store: Store, key: str) -> bool:
    """Whether ``key`` is a form's upload key; if it is, refuse (``UploadClosed``) unless the form is still
    being processed. ``False`` for any other key (an image job's upload is checked by ``queue.submit``)."""
    form_id = form_of_upload_key(key)
    if form_id is None:
        return False
    holder = await store.interrogations.holder(form_id)
    if holder is None or holder.state != FormState.PROCESSING:
        raise UploadClosed()
    return True
