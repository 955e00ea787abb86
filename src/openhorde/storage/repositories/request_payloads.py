"""What a request asked for, read back for ``GET /generate/request/{id}``: its row, models and worker list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Job, Request, RequestModel, RequestWorker

_REQUESTS = cast(Table, Request.__table__)
_REQUEST_MODELS = cast(Table, RequestModel.__table__)
_REQUEST_WORKERS = cast(Table, RequestWorker.__table__)
_JOBS = cast(Table, Job.__table__)


@dataclass(frozen=True, slots=True)
class RequestPayload:
    """A request's settings as it was queued (after prompt filters), and who made it."""

    user_id: int
    prompt: str
    params: dict[str, Any]
    n: int
    nsfw: bool
    censor_nsfw: bool
    trusted_workers: bool
    slow_workers: bool
    worker_blacklist: bool
    r2: bool
    shared: bool
    source_processing: str
    has_source_image: bool
    has_source_mask: bool
    disable_batching: bool
    webhook: str | None
    models: list[str]
    workers: list[str]


_ROW = select(
    _REQUESTS.c.user_id,
    _REQUESTS.c.prompt,
    _REQUESTS.c.params,
    _REQUESTS.c.n_total.label("n"),
    _REQUESTS.c.nsfw,
    _REQUESTS.c.censor_nsfw,
    _REQUESTS.c.trusted_workers,
    _REQUESTS.c.slow_workers,
    _REQUESTS.c.worker_blacklist,
    _REQUESTS.c.r2,
    _REQUESTS.c.shared,
    _REQUESTS.c.source_processing,
    _REQUESTS.c.source_image_key.is_not(None).label("has_source_image"),
    _REQUESTS.c.source_mask_key.is_not(None).label("has_source_mask"),
    _REQUESTS.c.disable_batching,
    _REQUESTS.c.webhook,
).where(_REQUESTS.c.id == bindparam("request"))
# A request's model rows leave with it when it ends; the models its images were made with stay on its jobs.
_MODELS = (
    select(_REQUEST_MODELS.c.model)
    .where(_REQUEST_MODELS.c.request_id == bindparam("request"))
    .union(select(_JOBS.c.model).where(_JOBS.c.request_id == bindparam("request")))
)
_WORKERS = select(_REQUEST_WORKERS.c.worker_id).where(_REQUEST_WORKERS.c.request_id == bindparam("request"))


class RequestPayloadRepository:
    """Reads of what a request asked for."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, request_id: str) -> RequestPayload | None:
        """The request's settings, models and worker list; ``None`` if there is no such request (any more)."""
        row = (await self._session.execute(_ROW, {"request": request_id})).first()
        if row is None:
            return None
        models = sorted(str(m) for m in (await self._session.scalars(_MODELS, {"request": request_id})))
        workers = sorted(str(w) for w in (await self._session.scalars(_WORKERS, {"request": request_id})))
        return RequestPayload(**row._mapping, models=models, workers=workers)
