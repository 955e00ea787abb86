"""``/gallery``: a registered user's kept images (an OpenHorde extension)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiUser, ContextDep, StoreDep
from openhorde.api.schemas.gallery import GalleryImageDeleted, GalleryImageOut, GalleryPageOut
from openhorde.domain import gallery

router = APIRouter(prefix="/gallery", tags=["gallery"])


def _image_out(kept: gallery.KeptImage) -> GalleryImageOut:
    stored = asdict(kept.image)
    del stored["image_key"]  # the URL stands for it
    return GalleryImageOut(url=kept.url, **stored)


@router.get("", response_model=GalleryPageOut, summary="Your kept images, newest first (OpenHorde)")
async def list_gallery(
    store: StoreDep, ctx: ContextDep, user: ApiUser, page: Annotated[int, Query(ge=1, le=100_000)] = 1
) -> GalleryPageOut:
    found = await gallery.list_images(store, ctx, user, page)
    return GalleryPageOut(
        images=[_image_out(kept) for kept in found.items],
        page=found.page,
        pages=found.pages,
        total=found.total,
    )


@router.delete("/{image_id}", response_model=GalleryImageDeleted, summary="Delete one of your kept images (OpenHorde)")
async def delete_gallery_image(image_id: str, store: StoreDep, ctx: ContextDep, user: ApiUser) -> GalleryImageDeleted:
    await gallery.delete_image(store, ctx, user, image_id)
    return GalleryImageDeleted(deleted=True)
