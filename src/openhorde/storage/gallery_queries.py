"""Named queries of the gallery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import GalleryImage, Job


async def insert_image(session: AsyncSession, row: dict[str, Any]) -> None:
    """Keep one image."""
    await session.execute(insert(GalleryImage), [row])


async def page_of(session: AsyncSession, user_id: int, offset: int, limit: int) -> list[GalleryImage]:
    """A user's kept images, newest first (walks ``ix_gallery_images_user_created``)."""
    query = (
        select(GalleryImage)
        .where(GalleryImage.user_id == user_id)
        .order_by(GalleryImage.created_at.desc(), GalleryImage.id)
        .offset(offset)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def count_of(session: AsyncSession, user_id: int) -> int:
    """How many images a user keeps."""
    return int(await session.scalar(select(func.count()).where(GalleryImage.user_id == user_id)) or 0)


async def get_image(session: AsyncSession, image_id: str) -> GalleryImage | None:
    """One kept image by id."""
    return await session.get(GalleryImage, image_id)


async def delete_image(session: AsyncSession, image_id: str) -> None:
    """Forget one kept image (its blob is the caller's business)."""
    await session.execute(delete(GalleryImage).where(GalleryImage.id == image_id))


async def kept_keys(session: AsyncSession, keys: Sequence[str]) -> set[str]:
    """The subset of blob ``keys`` that some gallery image still shows."""
    if not keys:
        return set()
    return set(await session.scalars(select(GalleryImage.image_key).where(GalleryImage.image_key.in_(keys))))


async def key_in_queue(session: AsyncSession, key: str) -> bool:
    """Whether a job of a request that still exists points at this blob (its clean-up will remove it)."""
    return await session.scalar(select(Job.id).where(Job.image_key == key).limit(1)) is not None
