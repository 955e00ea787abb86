"""Faults, expired leases and clean-up: the duties that keep the queue honest.

``run_maintenance`` is started every few seconds in each server process; on PostgreSQL one process
at a time runs it (an advisory lock, ``QueueRepository.try_maintenance_lock``) and the others skip their
pass. Each step is also a conditional update (only jobs still ``processing``, only requests still
``queued``), so even overlapping passes would do no harm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from openhorde.domain import gallery, webhooks, worker_cache, worker_economy
from openhorde.domain.context import HordeContext
from openhorde.domain.interrogations import expiry as alchemy_expiry
from openhorde.domain.queue import events
from openhorde.domain.queue.blob_keys import upload_key
from openhorde.domain.queue.states import (
    QUEUE_TIMEOUT_SECONDS,
    JobState,
    RequestState,
    job_transition,
    request_transition,
)
from openhorde.storage.store import Store

log = logging.getLogger(__name__)

MAX_FAULTED_JOBS = 3
"""A request whose jobs fault this many times ends ``faulted``."""
SWEEP_BATCH = 500
LEASE_EXPIRED_REASON = "The worker did not submit before its lease ran out."


async def return_to_queue(store: Store, request_id: str, reason: str, now: float) -> None:
    """Account for one faulted or expired job: its image waits again, or the request faults."""
    await store.queue.return_image(
        request_transition(RequestState.FAULTED),
        request_id,
        now,
        MAX_FAULTED_JOBS,
        f"{MAX_FAULTED_JOBS} jobs of this request failed; the last: {reason}",
    )
    await webhooks.requests_ended(store, [request_id], now)  # a "faulted" event, if it just faulted
    events.announce(store, request_id, events.FAULT)  # its streams re-read it


async def count_abort(
    store: Store, worker_ids: Sequence[str | None], now: float | None = None, max_aborts: int | None = None
) -> None:
    """Add one aborted job to each worker's record and to its hourly count; a worker with more than
    ``max_aborts`` in the hour goes into maintenance (``worker_economy``)."""
    moment = now or time.time()
    ids = [worker_id for worker_id in worker_ids if worker_id is not None]
    await worker_economy.count_aborts(store, ids, moment)
    for switched in await worker_economy.enter_maintenance_if_aborting(store, ids, max_aborts, moment):
        worker_cache.changed(store, switched)  # its next pop, in any process, sees the maintenance


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance pass did."""

    expired_jobs: int
    timed_out_requests: int
    removed_requests: int
    expired_forms: int = 0
    """Alchemy forms whose lease ran out (``domain/interrogations/expiry.py``)."""
    removed_interrogations: int = 0
    analyzed_tables: tuple[str, ...] = ()
    """Queue tables whose planner statistics were refreshed because they had gone stale (PostgreSQL)."""
    skipped: bool = False
    """True when another server process held the maintenance lock, so this pass did nothing."""


async def expire_leases(store: Store, now: float, max_aborts: int | None = None) -> int:
    """Give the images of jobs past their deadline back to the queue; returns how many."""
    expired = await store.queue.expire_leases(job_transition(JobState.EXPIRED), now, LEASE_EXPIRED_REASON, SWEEP_BATCH)
    for job in sorted(expired, key=lambda job: job.request_id):
        await return_to_queue(store, job.request_id, "the worker did not submit before its lease ran out", now)
    await count_abort(store, [job.worker_id for job in expired], now, max_aborts)
    return len(expired)


async def time_out_queued(store: Store, now: float) -> int:
    """End requests nobody served for ``QUEUE_TIMEOUT_SECONDS`` as faulted, with the reason."""
    ids = await store.queue.time_out(
        request_transition(RequestState.FAULTED),
        now - QUEUE_TIMEOUT_SECONDS,
        now,
        f"No worker served this request within {QUEUE_TIMEOUT_SECONDS // 60} minutes.",
        SWEEP_BATCH,
    )
    if ids:
        await webhooks.requests_ended(store, ids, now)  # their "faulted" events
        for request_id in ids:
            events.announce(store, request_id, events.TIMED_OUT)  # ends their streams
    return len(ids)


async def remove_old_requests(store: Store, ctx: HordeContext, now: float) -> int:
    """Delete ended requests (and their images) whose retention time has passed."""
    ids = await store.queue.ended_before(now - ctx.settings.blobs.result_retention_seconds, SWEEP_BATCH)
    if not ids:
        return 0
    blobs = await store.queue.blobs_of(ids)
    stored = [*blobs.sources, *(key for job_id, image in blobs.jobs for key in (upload_key(job_id), image) if key)]
    keys = await gallery.without_kept(store, stored)
    await store.queue.delete(ids)
    await ctx.blobs.delete_many(keys)
    return len(ids)


async def run_maintenance(store: Store, ctx: HordeContext, now: float) -> MaintenanceReport:
    """One pass of every periodic duty, in one transaction; skipped while another process runs one."""
    if not await store.queue.try_maintenance_lock():
        return MaintenanceReport(expired_jobs=0, timed_out_requests=0, removed_requests=0, skipped=True)
    max_aborts = ctx.settings.economy.worker_max_aborts_per_hour
    expired_forms = await alchemy_expiry.expire_form_leases(store, now)
    await count_abort(store, expired_forms.worker_ids, now, max_aborts)
    report = MaintenanceReport(
        expired_jobs=await expire_leases(store, now, max_aborts),
        timed_out_requests=await time_out_queued(store, now),
        removed_requests=await remove_old_requests(store, ctx, now),
        expired_forms=expired_forms.count,
        removed_interrogations=await alchemy_expiry.remove_old_interrogations(store, ctx, now),
        analyzed_tables=tuple(await store.queue.refresh_stale_statistics()),
    )
    if (
        any(
            (report.expired_jobs, report.timed_out_requests, report.removed_requests, report.expired_forms),
        )
        or report.analyzed_tables
    ):
        log.info("maintenance: %s", report)
    return report
