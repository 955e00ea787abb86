"""Creating, showing and cancelling interrogations (``POST /interrogate/async``, ``/interrogate/status``).

The source image is read, checked and stored like a generation's (``domain/queue/sources.py``: guarded download
of a URL, base64 otherwise, decoded in a worker thread, re-encoded as WebP) before the unit of work that queues
the interrogation opens, so a slow download holds no database connection. Alchemists download it from this
horde's blob store, never from the client's URL.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from dataclasses import dataclass
from typing import Any

from PIL import Image

from openhorde.domain import accounts, webhooks
from openhorde.domain.accounts import is_anonymous
from openhorde.domain.context import HordeContext
from openhorde.domain.interrogations.forms import (
    CONCURRENCY_FACTOR,
    MAX_IMAGE_TILES,
    FormState,
    charge_cents,
    form_transition,
    image_tiles,
    is_post_processor,
    overall_state,
    result_key,
    reward_cents,
)
from openhorde.domain.moderation import modes as horde_modes
from openhorde.domain.moderation import role_effects
from openhorde.domain.queue import sources
from openhorde.errors import RequestNotFound, SourceImageResolutionExceeded, TooManyPrompts
from openhorde.storage.db import Database
from openhorde.storage.repositories.interrogations import InterrogationRow
from openhorde.storage.store import Store


@dataclass(frozen=True)
class FormRequest:
    """One form a client asks for, with its optional payload (e.g. a post-processor's settings)."""

    name: str
    payload: dict[str, Any] | None = None


@dataclass
class NewInterrogation:
    """A client's interrogation request, already checked against the wire schema."""

    source_image: str
    forms: list[FormRequest]
    slow_workers: bool = True
    trusted_workers: bool = False
    webhook: str | None = None
    client_agent: str = "unknown:0:unknown"


@dataclass(frozen=True)
class FormStatus:
    """One form as the status shows it; ``result`` (``None`` until done) holds a download URL for a post-processed
    image."""

    name: str
    state: str
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class InterrogationStatus:
    """An interrogation's overall state and its forms, in the client's order."""

    state: str
    forms: list[FormStatus]


def _size(webp: bytes) -> tuple[int, int]:
    """The width and height of an image already checked (reads the header only)."""
    with Image.open(io.BytesIO(webp)) as image:
        return image.size


async def queue_interrogation(
    db: Database, ctx: HordeContext, api_key: str | None, new: NewInterrogation, now: float | None = None
) -> str:
    """Check, store and queue an interrogation; returns its id.

    The webhook's DNS, the source image's download and the Pillow work happen first, holding no database
    connection; one unit of work then authenticates the caller and queues the forms. The stored image is removed
    again if the interrogation is refused after all.
    """
    await webhooks.check_url(ctx, new.webhook)
    interrogation_id = str(uuid.uuid4())
    prepared = await sources.prepare(ctx, new.source_image, None, "img2img")
    assert prepared.source is not None  # a source was given
    width, height = await asyncio.to_thread(_size, prepared.source)
    tiles = image_tiles(width, height)
    if tiles > MAX_IMAGE_TILES:
        raise SourceImageResolutionExceeded(
            f"The image is too large ({tiles} tiles of 512x512, at most {MAX_IMAGE_TILES}): "
            "alchemists would run out of memory processing it."
        )
    keys = await sources.save(ctx, prepared, interrogation_id)
    try:
        async with db.store() as store:
            user = await accounts.authenticate(store, ctx.secret, ctx.keys, api_key)
            await _create(store, ctx, user, new, interrogation_id, keys.source or "", tiles, now or time.time())
    except BaseException:
        await sources.discard(ctx, keys)
        raise
    return interrogation_id


async def _create(
    store: Store,
    ctx: HordeContext,
    user: accounts.Account,
    new: NewInterrogation,
    interrogation_id: str,
    source_key: str,
    tiles: int,
    now: float,
) -> None:
    """Queue the forms of a checked interrogation, within the requester's form concurrency."""
    await horde_modes.refuse_if_maintenance(store, ctx, now)
    # Locks the requester's row (PostgreSQL) so parallel requests count each other's forms.
    balance = (await store.accounts.lock([user.id]))[user.id]
    forms = list({form.name: form for form in reversed(new.forms)}.values())[::-1]  # each kind once, first wins
    limit = user.concurrency * CONCURRENCY_FACTOR
    open_forms = await store.interrogations.open_forms_of(user.id)
    if open_forms + len(forms) > limit:
        raise TooManyPrompts(
            f"Your account may have at most {limit} interrogation forms queued ({open_forms} are); "
            "wait for some to finish."
        )
    trusted_workers = new.trusted_workers or user.is_education
    priority = role_effects.queue_priority(user, 0 if is_anonymous(user) else balance)
    await store.interrogations.create(
        {
            "id": interrogation_id,
            "user_id": user.id,
            "created_at": now,
            "expires_at": now + ctx.settings.blobs.result_retention_seconds,
            "source_key": source_key,
            "image_tiles": tiles,
            "slow_workers": new.slow_workers,
            "trusted_workers": trusted_workers,
            "webhook": new.webhook,
            "client_agent": new.client_agent[:1000],
        },
        [
            {
                "id": str(uuid.uuid4()),
                "interrogation_id": interrogation_id,
                "position": position,
                "user_id": user.id,
                "name": form.name,
                "state": FormState.WAITING.value,
                "payload": form.payload,
                "result": None,
                "reward_cents": reward_cents(form.name, tiles),
                "charge_cents": charge_cents(reward_cents(form.name, tiles), new.slow_workers),
                "image_tiles": tiles,
                "slow_workers": new.slow_workers,
                "trusted_workers": trusted_workers,
                "priority": priority,
                "created_at": now,
                "aborts": 0,
            }
            for position, form in enumerate(forms)
        ],
    )


async def get_interrogation(store: Store, interrogation_id: str) -> InterrogationRow:
    """The interrogation with this id; ``RequestNotFound`` otherwise (also once it expired)."""
    found = await store.interrogations.get(interrogation_id)
    if found is None:
        raise RequestNotFound(f"Interrogation with ID '{interrogation_id}' not found; it may have expired.")
    return found


async def status(store: Store, ctx: HordeContext, interrogation: InterrogationRow) -> InterrogationStatus:
    """An interrogation's state and forms; a post-processed image's result is a presigned download URL."""
    views = await store.interrogations.forms_of(interrogation.id)
    forms = []
    for form in views:
        result = form.result
        if form.state == FormState.DONE and is_post_processor(form.name):
            result = {form.name: ctx.blobs.presign("GET", result_key(form.id))}
        forms.append(FormStatus(name=form.name, state=form.state, result=result))
    return InterrogationStatus(state=overall_state(f.state for f in views), forms=forms)


async def cancel(store: Store, interrogation: InterrogationRow) -> None:
    """End the forms no alchemist has taken yet; forms being worked on are still delivered and paid."""
    await store.interrogations.cancel(form_transition(FormState.CANCELLED), interrogation.id)
