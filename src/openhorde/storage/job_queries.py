"""Named queries of job settlement (``POST /generate/submit``).

Hot statements are built once, at import, with bound parameters: building a SQLAlchemy
expression costs more Python time than running it, and a reused statement also reuses
its compiled form and the database's prepared statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Job, Request, User, Worker

_NO_SYNC = {"synchronize_session": False}

_JOB_STATE = select(Job.state).where(Job.id == bindparam("job_id"))


async def job_state(session: AsyncSession, job_id: str) -> str | None:
    """A job's state; ``None`` if there is no such job."""
    return await session.scalar(_JOB_STATE, {"job_id": job_id})


_JOB_WITH_REQUEST = (
    select(Job, Request, Worker)
    .join(Request, Request.id == Job.request_id)
    .outerjoin(Worker, Worker.id == Job.worker_id)
    .where(Job.id == bindparam("job_id"))
)


async def job_with_request(session: AsyncSession, job_id: str) -> tuple[Job, Request, Worker | None] | None:
    """A job, its request and its worker (``None`` once deleted), in one query."""
    row = (await session.execute(_JOB_WITH_REQUEST, {"job_id": job_id})).first()
    return (row[0], row[1], row[2]) if row is not None else None


_STILL_PROCESSING = (Job.id == bindparam("job_id")) & (Job.state == "processing")
_CLAIM_DONE = (
    update(Job)
    .where(_STILL_PROCESSING)
    .values(
        state="done",
        finished_at=bindparam("now"),
        image_key=bindparam("image_key"),
        censored=bindparam("censored"),
        seed=bindparam("seed"),
        gen_metadata=bindparam("gen_metadata", type_=Job.gen_metadata.type),
        reward_cents=bindparam("reward_cents"),
    )
    .execution_options(**_NO_SYNC)
)
_CLAIM_FAULTED = (
    update(Job)
    .where(_STILL_PROCESSING)
    .values(
        state="faulted",
        finished_at=bindparam("now"),
        fault_reason=bindparam("reason"),
        gen_metadata=bindparam("gen_metadata", type_=Job.gen_metadata.type),
    )
    .execution_options(**_NO_SYNC)
)


def _changed(result: Any) -> bool:
    return bool(getattr(result, "rowcount", 0))


async def claim_done(
    session: AsyncSession,
    job_id: str,
    now: float,
    image_key: str,
    censored: bool,
    seed: int,
    gen_metadata: list[dict[str, Any]],
    reward_cents: int,
) -> bool:
    """Mark a job that is still ``processing`` done with its image; ``False`` if it no longer is
    (a duplicate or late submit)."""
    values = {
        "job_id": job_id,
        "now": now,
        "image_key": image_key,
        "censored": censored,
        "seed": seed,
        "gen_metadata": gen_metadata,
        "reward_cents": reward_cents,
    }
    return _changed(await session.execute(_CLAIM_DONE, values))


async def claim_faulted(
    session: AsyncSession, job_id: str, now: float, reason: str, gen_metadata: list[dict[str, Any]]
) -> bool:
    """Mark a job that is still ``processing`` faulted by its worker; ``False`` if it no longer is."""
    values = {"job_id": job_id, "now": now, "reason": reason, "gen_metadata": gen_metadata}
    return _changed(await session.execute(_CLAIM_FAULTED, values))


_ADD_CONTRIBUTION = (
    update(User)
    .where(User.id == bindparam("user_id"))
    .values(
        contribution_megapixelsteps=User.contribution_megapixelsteps + bindparam("megapixelsteps"),
        contribution_fulfillments=User.contribution_fulfillments + 1,
    )
    .execution_options(**_NO_SYNC)
)
_ADD_USAGE = (
    update(User)
    .where(User.id == bindparam("user_id"))
    .values(usage_megapixelsteps=User.usage_megapixelsteps + bindparam("megapixelsteps"))
    .execution_options(**_NO_SYNC)
)


async def count_delivery(session: AsyncSession, owner_id: int, requester_id: int, megapixelsteps: float) -> None:
    """Add one delivered image to the worker owner's contributions and the requester's usage."""
    await session.execute(_ADD_CONTRIBUTION, {"user_id": owner_id, "megapixelsteps": megapixelsteps})
    await session.execute(_ADD_USAGE, {"user_id": requester_id, "megapixelsteps": megapixelsteps})


_LAST_IMAGE = (Request.state == "queued") & (Request.n_waiting == 0) & (Request.n_processing == 1)
_FINISH_IMAGE = (
    update(Request)
    .where(Request.id == bindparam("request_id"))
    .values(
        state=case((_LAST_IMAGE, "done"), else_=Request.state),
        n_processing=Request.n_processing - 1,
        n_finished=Request.n_finished + 1,
        charged_cents=Request.charged_cents + bindparam("charged_cents"),
        last_activity_at=bindparam("now"),
    )
    .returning(Request.state)
    .execution_options(**_NO_SYNC)
)


async def finish_image(session: AsyncSession, request_id: str, charged_cents: int, now: float) -> str:
    """Count one more finished image of a request and what it cost; the last one makes the request ``done``.
    Returns the request's state afterwards."""
    values = {"request_id": request_id, "charged_cents": charged_cents, "now": now}
    return str((await session.execute(_FINISH_IMAGE, values)).scalar_one())


_RECORD_DELIVERY = (
    update(Worker)
    .where(Worker.id == bindparam("worker_id"))
    .values(
        speed_pps=bindparam("speed_pps"),
        fulfilments=Worker.fulfilments + 1,
        megapixelsteps=Worker.megapixelsteps + bindparam("megapixelsteps"),
        kudos_generated_cents=Worker.kudos_generated_cents + bindparam("reward_cents"),
    )
    .execution_options(**_NO_SYNC)
)


async def record_delivery(
    session: AsyncSession, worker_id: str, speed_pps: float, megapixelsteps: float, reward_cents: int
) -> None:
    """Update a worker's speed and its delivered images, megapixel-steps and kudos."""
    await session.execute(
        _RECORD_DELIVERY,
        {
            "worker_id": worker_id,
            "speed_pps": speed_pps,
            "megapixelsteps": megapixelsteps,
            "reward_cents": reward_cents,
        },
    )
