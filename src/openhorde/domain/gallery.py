"""The gallery: images a registered user keeps on the server after their request is gone.

A request sent with ``"gallery": true`` (an OpenHorde extension) by a registered user keeps each
finished, uncensored image (the submit's settlement copies it). The gallery row shares the job's blob:
the request's clean-up skips blobs a gallery row still shows, and deleting the last reference removes
the blob.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from openhorde.domain.accounts import Account, is_anonymous
from openhorde.domain.context import HordeContext
from openhorde.domain.paging import Page, offset_of
from openhorde.errors import AnonForbidden, GalleryImageNotFound
from openhorde.storage.repositories.gallery import GalleryImage
from openhorde.storage.store import Store

PAGE_SIZE = 24


@dataclass(frozen=True)
class KeptImage:
    """One gallery image as its owner sees it: the stored image, and a signed URL to the picture."""

    image: GalleryImage
    url: str


async def list_images(
    store: Store, ctx: HordeContext, user: Account, page: int, now: float | None = None
) -> Page[KeptImage]:
    """One page of a user's gallery, newest first."""
    if is_anonymous(user):
        raise AnonForbidden("The gallery keeps images of registered users; register or sign in with your API key.")
    moment = now or time.time()
    total = await store.gallery.count_of(user.id)
    images = await store.gallery.page_of(user.id, offset_of(page, PAGE_SIZE), PAGE_SIZE)
    return Page.of([_kept(ctx, image, moment) for image in images], page, total, PAGE_SIZE)


async def delete_image(store: Store, ctx: HordeContext, user: Account, image_id: str) -> None:
    """Remove one of the user's images, and its blob unless its request still holds it."""
    image_key = await store.gallery.delete_owned(image_id, user.id)
    if image_key is None:
        raise GalleryImageNotFound(f"There is no image '{image_id}' in your gallery.")
    if not await store.gallery.key_in_queue(image_key):
        await ctx.blobs.delete_many([image_key])


async def without_kept(store: Store, keys: list[str]) -> list[str]:
    """The blob keys no gallery image shows: what a request's clean-up may delete."""
    kept = await store.gallery.kept_keys(keys)
    return [key for key in keys if key not in kept]


def _kept(ctx: HordeContext, image: GalleryImage, now: float) -> KeptImage:
    return KeptImage(image=image, url=ctx.blobs.presign("GET", image.image_key, now))
