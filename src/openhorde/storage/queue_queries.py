"""Named queries of the queue: requests, hand-out, leases and clean-up (matching is in ``matching_queries``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Job, Request, RequestModel, RequestWorker, User

QUEUED = "queued"
PROCESSING = "processing"


def queued_condition() -> ColumnElement[bool]:
    """A request with images still to hand out (the partial indexes' predicate).

    Written with literal constants, not bound parameters: PostgreSQL can then prove that a
    cached (generic) plan of a prepared statement may use the partial queue indexes, and stops
    planning the pop query afresh on every call."""
    return and_(Request.state == literal_column(f"'{QUEUED}'"), Request.n_waiting > literal_column("0"))


@dataclass(frozen=True)
class RequestCounters:
    """The columns of a request that its status needs (read without loading the whole row)."""

    id: str
    state: str
    n_waiting: int
    n_processing: int
    n_finished: int
    n_faulted: int
    things: int
    charged_cents: int
    shared: bool
    r2: bool
    fault_reason: str | None


_COUNTER_COLUMNS = (
    Request.id,
    Request.state,
    Request.n_waiting,
    Request.n_processing,
    Request.n_finished,
    Request.n_faulted,
    Request.things,
    Request.charged_cents,
    Request.shared,
    Request.r2,
    Request.fault_reason,
)


_REQUEST_COUNTERS = select(*_COUNTER_COLUMNS).where(Request.id == bindparam("request_id"))


async def request_counters(session: AsyncSession, request_id: str) -> RequestCounters | None:
    """The status columns of one request (primary-key lookup), or ``None``."""
    row = (await session.execute(_REQUEST_COUNTERS, {"request_id": request_id})).first()
    return RequestCounters(*row) if row is not None else None


_INSERT_REQUEST = insert(Request)
_COUNT_REQUEST = (
    update(User)
    .where(User.id == bindparam("user_id"))
    .values(usage_requests=User.usage_requests + 1, last_active_at=bindparam("now"))
    .execution_options(synchronize_session=False)
)


async def insert_request(session: AsyncSession, row: dict[str, Any]) -> None:
    """Insert one request row (a dict of ``requests`` columns)."""
    await session.execute(_INSERT_REQUEST, row)


async def count_request(session: AsyncSession, user_id: int, now: float) -> None:
    """Add one request to a user's usage and mark the user active."""
    await session.execute(_COUNT_REQUEST, {"user_id": user_id, "now": now})


_USER_QUEUE_TOTALS = select(
    func.coalesce(func.sum(Request.n_waiting), 0),
    func.coalesce(func.sum((Request.n_waiting + Request.n_processing) * Request.charge_cents), 0),
).where(Request.state == QUEUED, Request.user_id == bindparam("user_id"))


async def user_queue_totals(session: AsyncSession, user_id: int) -> tuple[int, int]:
    """``(images waiting, hundredths of a kudo still to be charged)`` over a user's queued requests."""
    waiting, outstanding = (await session.execute(_USER_QUEUE_TOTALS, {"user_id": user_id})).one()
    return int(waiting), int(outstanding)


async def first_matching_model(session: AsyncSession, request_id: str, models: Sequence[str]) -> str | None:
    """One of ``models`` that the request accepts (the first in the worker's order), if any."""
    accepted = set(
        await session.scalars(
            select(RequestModel.model).where(
                RequestModel.request_id == request_id, RequestModel.model.in_(list(models))
            )
        )
    )
    return next((m for m in models if m in accepted), None)


async def leave_model_queues(session: AsyncSession, request_ids: Sequence[str]) -> None:
    """Take ended requests out of the per-model queues (their ``request_models`` rows, see ``RequestModel``)."""
    if request_ids:
        await session.execute(delete(RequestModel).where(RequestModel.request_id.in_(list(request_ids))))


_TAKE_IMAGES = (
    update(Request)
    .where(Request.id == bindparam("request_id"))
    .values(
        n_waiting=Request.n_waiting - bindparam("count"),
        n_processing=Request.n_processing + bindparam("count"),
        last_activity_at=bindparam("now"),
    )
    .returning(Request.n_waiting)
    .execution_options(synchronize_session=False)
)


async def take_images(session: AsyncSession, request_id: str, count: int, now: float) -> None:
    """Move ``count`` images of a request from waiting to processing; with none left waiting, the request leaves
    the per-model queues' index until an image comes back (``set_waiting``)."""
    left = (await session.execute(_TAKE_IMAGES, {"request_id": request_id, "count": count, "now": now})).scalar_one()
    if left == 0:
        await set_waiting(session, request_id, False)


_SET_WAITING = (
    update(RequestModel)
    .where(RequestModel.request_id == bindparam("of_request"), RequestModel.waiting != bindparam("flag"))
    .values(waiting=bindparam("flag"))
    .execution_options(synchronize_session=False)
)


async def set_waiting(session: AsyncSession, request_id: str, waiting: bool) -> None:
    """Mark a request's per-model queue rows as having images waiting, or not (see ``RequestModel``)."""
    await session.execute(_SET_WAITING, {"of_request": request_id, "flag": waiting})


async def expire_leases(session: AsyncSession, now: float, limit: int) -> list[tuple[str, str, str | None]]:
    """Mark processing jobs past their deadline as expired; return ``(job_id, request_id, worker_id)``."""
    due = select(Job.id).where(Job.state == PROCESSING, Job.deadline_at < now).order_by(Job.deadline_at).limit(limit)
    rows = await session.execute(
        update(Job)
        .where(Job.id.in_(due.scalar_subquery()), Job.state == PROCESSING)
        .values(
            state="expired",
            finished_at=now,
            fault_reason="The worker did not submit before its lease ran out.",
        )
        .returning(Job.id, Job.request_id, Job.worker_id)
        .execution_options(synchronize_session=False)
    )
    return [(str(a), str(b), c) for a, b, c in rows]


async def expired_request_ids(session: AsyncSession, finished_before: float, limit: int) -> list[str]:
    """Ids of ended requests whose last activity is older than ``finished_before``."""
    rows = await session.scalars(
        select(Request.id)
        .where(Request.state != QUEUED, Request.last_activity_at < finished_before)
        .order_by(Request.last_activity_at)
        .limit(limit)
    )
    return list(rows)


async def blob_keys_of(
    session: AsyncSession, request_ids: Sequence[str], upload_key: Callable[[str], str]
) -> list[str]:
    """Blob keys that belong to these requests: source image, mask, and each job's upload and delivered image
    (``upload_key`` turns a job id into its upload's key)."""
    keys: list[str] = []
    for source, mask in await session.execute(
        select(Request.source_image_key, Request.source_mask_key).where(Request.id.in_(request_ids))
    ):
        keys.extend(k for k in (source, mask) if k)
    for job_id, image_key in await session.execute(
        select(Job.id, Job.image_key).where(Job.request_id.in_(request_ids))
    ):
        keys.extend(k for k in (upload_key(job_id), image_key) if k)
    return keys


async def delete_requests(session: AsyncSession, request_ids: Sequence[str]) -> None:
    """Delete requests with their jobs, model and worker lists."""
    for table in (Job, RequestModel, RequestWorker):
        await session.execute(delete(table).where(table.request_id.in_(request_ids)))
    await session.execute(delete(Request).where(Request.id.in_(request_ids)))


async def stale_queued_request_ids(session: AsyncSession, idle_before: float, limit: int) -> list[str]:
    """Ids of queued requests with no activity since ``idle_before`` and nothing in progress."""
    rows = await session.scalars(
        select(Request.id)
        .where(Request.state == QUEUED, Request.n_processing == 0, Request.last_activity_at < idle_before)
        .limit(limit)
    )
    return list(rows)
