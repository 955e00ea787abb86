"""Faults, expired leases and clean-up: the duties that keep the queue honest.

``run_maintenance`` is started every few seconds in each server process; on PostgreSQL one process
at a time runs it (an advisory lock, ``storage.locks``) and the others skip their pass. Each step is
also a conditional update (only jobs still ``processing``, only requests still ``queued``), so even
overlapping passes would do no harm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, update
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain import gallery, webhooks, worker_economy
from openhorde.domain.context import HordeContext
from openhorde.domain.queue import events
from openhorde.domain.queue.matching import upload_key
from openhorde.domain.queue.states import RequestState
from openhorde.storage import locks, queue_queries
from openhorde.storage.tables import Request, Worker

log = logging.getLogger(__name__)

MAX_FAULTED_JOBS = 3
"""A request whose jobs fault this many times ends ``faulted``."""
QUEUE_TIMEOUT_SECONDS = 60 * 60
"""A queued request no worker touched for this long ends ``faulted`` (no worker could serve it)."""
SWEEP_BATCH = 500


async def return_to_queue(session: AsyncSession, request_id: str, reason: str, now: float) -> None:
    """Account for one faulted or expired job: its image waits again, or the request faults."""
    waiting = await session.scalar(
        update(Request)
        .where(Request.id == request_id)
        .values(
            n_processing=Request.n_processing - 1,
            n_faulted=Request.n_faulted + 1,
            n_waiting=case(
                (
                    (Request.state == RequestState.QUEUED) & (Request.n_faulted + 1 < MAX_FAULTED_JOBS),
                    Request.n_waiting + 1,
                ),
                else_=Request.n_waiting,
            ),
            last_activity_at=now,
        )
        .returning(Request.n_waiting)
    )
    if waiting:
        await queue_queries.set_waiting(session, request_id, True)
    faulted = await session.scalars(
        update(Request)
        .where(
            Request.id == request_id,
            Request.state == RequestState.QUEUED,
            Request.n_faulted >= MAX_FAULTED_JOBS,
        )
        .values(
            state=RequestState.FAULTED,
            n_waiting=0,
            fault_reason=f"{MAX_FAULTED_JOBS} jobs of this request failed; the last: {reason}",
        )
        .returning(Request.id)
    )
    await queue_queries.leave_model_queues(session, list(faulted))
    await webhooks.requests_ended(session, [request_id], now)  # a "faulted" event, if it just faulted (issue 6 B)
    events.announce(session, request_id, events.FAULT)  # its streams re-read it (issue 6, part A)


async def count_abort(
    session: AsyncSession, worker_ids: Sequence[str | None], now: float | None = None, max_aborts: int | None = None
) -> None:
    """Add one aborted job to each worker's record and to its hourly count; a worker with more than
    ``max_aborts`` in the hour goes into maintenance (``worker_economy``)."""
    moment = now or time.time()
    window = worker_economy.abort_window_values(moment)
    for worker_id in worker_ids:
        if worker_id is not None:
            await session.execute(
                update(Worker)
                .where(Worker.id == worker_id)
                .values(aborted_jobs=Worker.aborted_jobs + 1, uncompleted_jobs=Worker.uncompleted_jobs + 1, **window)
            )
    ids = [worker_id for worker_id in worker_ids if worker_id is not None]
    await worker_economy.enter_maintenance_if_aborting(session, ids, max_aborts, moment)


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance pass did."""

    expired_jobs: int
    timed_out_requests: int
    removed_requests: int
    skipped: bool = False
    """True when another server process held the maintenance lock, so this pass did nothing."""


async def expire_leases(session: AsyncSession, now: float, max_aborts: int | None = None) -> int:
    """Give the images of jobs past their deadline back to the queue; returns how many."""
    expired = await queue_queries.expire_leases(session, now, SWEEP_BATCH)
    for _job_id, request_id, _worker_id in sorted(expired, key=lambda row: row[1]):
        await return_to_queue(session, request_id, "the worker did not submit before its lease ran out", now)
    await count_abort(session, [worker_id for _, _, worker_id in expired], now, max_aborts)
    return len(expired)


async def time_out_queued(session: AsyncSession, now: float) -> int:
    """End requests nobody served for ``QUEUE_TIMEOUT_SECONDS`` as faulted, with the reason."""
    ids = await queue_queries.stale_queued_request_ids(session, now - QUEUE_TIMEOUT_SECONDS, SWEEP_BATCH)
    if ids:
        faulted = await session.scalars(
            update(Request)
            .where(Request.id.in_(ids), Request.state == RequestState.QUEUED, Request.n_processing == 0)
            .values(
                state=RequestState.FAULTED,
                n_waiting=0,
                last_activity_at=now,
                fault_reason=f"No worker served this request within {QUEUE_TIMEOUT_SECONDS // 60} minutes.",
            )
            .returning(Request.id)
        )
        await queue_queries.leave_model_queues(session, list(faulted))
        await webhooks.requests_ended(session, ids, now)  # their "faulted" events (issue 6, part B)
        for request_id in ids:
            events.announce(session, request_id, events.TIMED_OUT)  # ends their streams (issue 6, part A)
    return len(ids)


async def remove_old_requests(session: AsyncSession, ctx: HordeContext, now: float) -> int:
    """Delete ended requests (and their images) whose retention time has passed."""
    ids = await queue_queries.expired_request_ids(session, now - ctx.settings.result_retention_seconds, SWEEP_BATCH)
    if not ids:
        return 0
    keys = await gallery.without_kept(session, await queue_queries.blob_keys_of(session, ids, upload_key))
    await queue_queries.delete_requests(session, ids)
    await ctx.blobs.delete_many(keys)
    return len(ids)


async def run_maintenance(session: AsyncSession, ctx: HordeContext, now: float) -> MaintenanceReport:
    """One pass of every periodic duty, in one transaction; skipped while another process runs one."""
    if not await locks.try_cluster_lock(session, locks.MAINTENANCE_LOCK):
        return MaintenanceReport(expired_jobs=0, timed_out_requests=0, removed_requests=0, skipped=True)
    report = MaintenanceReport(
        expired_jobs=await expire_leases(session, now, ctx.settings.worker_max_aborts_per_hour),
        timed_out_requests=await time_out_queued(session, now),
        removed_requests=await remove_old_requests(session, ctx, now),
    )
    if report.expired_jobs or report.timed_out_requests or report.removed_requests:
        log.info("maintenance: %s", report)
    return report
