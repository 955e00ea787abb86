"""The gallery repository: images registered users keep after their request is gone.

A kept image shares its job's blob (the submit's settlement copies it here: ``deliveries.py``); these
statements page through a user's images, delete one, and tell which blobs a gallery image or a live job
still shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import GalleryImage as GalleryImageRow
from openhorde.storage.tables import Job

_GALLERY = cast(Table, GalleryImageRow.__table__)
_JOBS = cast(Table, Job.__table__)


@dataclass(frozen=True, slots=True)
class GalleryImage:
    """One kept image."""

    id: str
    request_id: str
    image_key: str
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


_IMAGE_FIELDS = tuple(field.name for field in fields(GalleryImage))

_PAGE = (
    select(*(_GALLERY.c[name] for name in _IMAGE_FIELDS))
    .where(_GALLERY.c.user_id == bindparam("owner"))
    .order_by(_GALLERY.c.created_at.desc(), _GALLERY.c.id)  # walks ix_gallery_images_user_created
    .offset(bindparam("skip"))
    .limit(bindparam("take"))
)
_COUNT = select(func.count()).select_from(_GALLERY).where(_GALLERY.c.user_id == bindparam("owner"))
_DELETE_OWNED = (
    delete(_GALLERY)
    .where(_GALLERY.c.id == bindparam("image"), _GALLERY.c.user_id == bindparam("owner"))
    .returning(_GALLERY.c.image_key)
)
_KEPT_KEYS = select(_GALLERY.c.image_key).where(_GALLERY.c.image_key.in_(bindparam("keys", expanding=True)))
_KEY_IN_QUEUE = select(_JOBS.c.id).where(_JOBS.c.image_key == bindparam("key")).limit(1)


def _image(row: Any) -> GalleryImage:
    return GalleryImage(**{**row._mapping, "params": dict(row.params or {})})


class GalleryRepository:
    """Every statement about ``gallery_images`` except the settlement's copy (``deliveries.py``)."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def page_of(self, user_id: int, offset: int, limit: int) -> list[GalleryImage]:
        """A user's kept images, newest first."""
        rows = await self._session.execute(_PAGE, {"owner": user_id, "skip": offset, "take": limit})
        return [_image(row) for row in rows]

    async def count_of(self, user_id: int) -> int:
        """How many images a user keeps."""
        return int((await self._session.execute(_COUNT, {"owner": user_id})).scalar() or 0)

    async def delete_owned(self, image_id: str, user_id: int) -> str | None:
        """Forget one of the user's kept images; its blob key (the blob is the caller's business), ``None`` if the
        user keeps no image with this id."""
        key = (await self._session.execute(_DELETE_OWNED, {"image": image_id, "owner": user_id})).scalar()
        return None if key is None else str(key)

    async def kept_keys(self, keys: Sequence[str]) -> set[str]:
        """The subset of blob ``keys`` that some gallery image still shows."""
        if not keys:
            return set()
        return {str(key) for key in (await self._session.execute(_KEPT_KEYS, {"keys": list(keys)})).scalars()}

    async def key_in_queue(self, key: str) -> bool:
        """Whether a job of a request that still exists points at this blob (its clean-up will remove it)."""
        return (await self._session.execute(_KEY_IN_QUEUE, {"key": key})).first() is not None
