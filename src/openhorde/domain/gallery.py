"""The gallery: images a registered user keeps on the server after their request is gone.

A request sent with ``"gallery": true`` (an OpenHorde extension) by a registered user keeps each
finished, uncensored image. The gallery row shares the job's blob: the request's clean-up skips
blobs a gallery row still shows, and deleting the last reference removes the blob.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain.accounts import is_anonymous
from openhorde.domain.context import HordeContext
from openhorde.domain.paging import Page, offset_of
from openhorde.errors import AnonForbidden, GalleryImageNotFound
from openhorde.storage import gallery_queries
from openhorde.storage.tables import GalleryImage, Job, Request, User, Worker

PAGE_SIZE = 24


@dataclass(frozen=True)
class KeptImage:
    """One gallery image as its owner sees it, with a signed URL to the picture."""

    id: str
    request_id: str
    url: str
    prompt: str
    params: dict[str, Any]
    model: str
    seed: int
    worker_id: str | None
    worker_name: str
    width: int
    height: int
    source_processing: str
    censored: bool
    created_at: float


async def keep_image(
    session: AsyncSession, request: Request, job: Job, worker: Worker, image_key: str, seed: int, now: float
) -> None:
    """Add a just-finished image of a ``gallery`` request to its requester's gallery."""
    await gallery_queries.insert_image(
        session,
        {
            "id": str(uuid.uuid4()),
            "user_id": request.user_id,
            "request_id": request.id,
            "job_id": job.id,
            "image_key": image_key,
            "prompt": request.prompt,
            "params": request.params,
            "model": job.model,
            "seed": seed,
            "worker_id": worker.id,
            "worker_name": worker.name,
            "width": request.width,
            "height": request.height,
            "source_processing": request.source_processing if request.source_image_key else "txt2img",
            "censored": False,
            "created_at": now,
        },
    )


async def list_images(
    session: AsyncSession, ctx: HordeContext, user: User, page: int, now: float | None = None
) -> Page[KeptImage]:
    """One page of a user's gallery, newest first."""
    if is_anonymous(user):
        raise AnonForbidden("The gallery keeps images of registered users; register or sign in with your API key.")
    moment = now or time.time()
    total = await gallery_queries.count_of(session, user.id)
    rows = await gallery_queries.page_of(session, user.id, offset_of(page, PAGE_SIZE), PAGE_SIZE)
    return Page.of([_kept(ctx, row, moment) for row in rows], page, total, PAGE_SIZE)


async def delete_image(session: AsyncSession, ctx: HordeContext, user: User, image_id: str) -> None:
    """Remove one of the user's images, and its blob unless its request still holds it."""
    row = await gallery_queries.get_image(session, image_id)
    if row is None or row.user_id != user.id:
        raise GalleryImageNotFound(f"There is no image '{image_id}' in your gallery.")
    await gallery_queries.delete_image(session, image_id)
    if not await gallery_queries.key_in_queue(session, row.image_key):
        await ctx.blobs.delete_many([row.image_key])


async def without_kept(session: AsyncSession, keys: list[str]) -> list[str]:
    """The blob keys no gallery image shows: what a request's clean-up may delete."""
    kept = await gallery_queries.kept_keys(session, keys)
    return [key for key in keys if key not in kept]


def _kept(ctx: HordeContext, row: GalleryImage, now: float) -> KeptImage:
    return KeptImage(
        id=row.id,
        request_id=row.request_id,
        url=ctx.blobs.presign("GET", row.image_key, now),
        prompt=row.prompt,
        params=dict(row.params or {}),
        model=row.model,
        seed=row.seed,
        worker_id=row.worker_id,
        worker_name=row.worker_name,
        width=row.width,
        height=row.height,
        source_processing=row.source_processing,
        censored=row.censored,
        created_at=row.created_at,
    )
