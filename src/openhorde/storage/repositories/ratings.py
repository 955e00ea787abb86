"""The ratings repository: aesthetic ratings of delivered images, and what rating a request needs to know."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import ImageRating, Job, Request

_RATINGS = cast(Table, ImageRating.__table__)
_JOBS = cast(Table, Job.__table__)
_REQUESTS = cast(Table, Request.__table__)


@dataclass(frozen=True, slots=True)
class RatedSet:
    """A request as rating sees it: its state, whether it was shared, and its delivered images (job id → model)."""

    state: str
    shared: bool
    images: dict[str, str]
    already_rated: bool


@dataclass(frozen=True, slots=True)
class Rating:
    """One image's rating as kept."""

    job_id: str
    request_id: str
    model: str
    rating: int | None
    artifacts: int | None
    best: bool
    rated_at: float


_REQUEST = select(_REQUESTS.c.state, _REQUESTS.c.shared).where(_REQUESTS.c.id == bindparam("request"))
_DELIVERED = select(_JOBS.c.id, _JOBS.c.model).where(
    _JOBS.c.request_id == bindparam("request"), _JOBS.c.state == "done"
)
_RATED = select(_RATINGS.c.job_id).where(_RATINGS.c.request_id == bindparam("request")).limit(1)
_INSERT = insert(_RATINGS)
_OF_REQUEST = (
    select(*(_RATINGS.c[name] for name in Rating.__dataclass_fields__))
    .where(_RATINGS.c.request_id == bindparam("request"))
    .order_by(_RATINGS.c.job_id)
)


class RatingRepository:
    """Every statement about ``image_ratings``."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def rated_set(self, request_id: str) -> RatedSet | None:
        """The request to rate, its delivered images and whether it was rated already; ``None`` if unknown."""
        found = (await self._session.execute(_REQUEST, {"request": request_id})).first()
        if found is None:
            return None
        images = {
            str(job): str(model) for job, model in await self._session.execute(_DELIVERED, {"request": request_id})
        }
        rated = (await self._session.execute(_RATED, {"request": request_id})).first() is not None
        return RatedSet(str(found.state), bool(found.shared), images, rated)

    async def add(self, ratings: list[Rating]) -> bool:
        """Keep a set of ratings; ``False`` (and nothing kept) if one of its images was rated meanwhile."""
        try:
            async with self._session.begin_nested():
                await self._session.execute(_INSERT, [asdict(r) for r in ratings])
        except IntegrityError:
            return False
        return True

    async def of_request(self, request_id: str) -> list[Rating]:
        """The ratings kept for a request's images."""
        rows = await self._session.execute(_OF_REQUEST, {"request": request_id})
        return [Rating(**row._mapping) for row in rows]
