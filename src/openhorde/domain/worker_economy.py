"""The worker economy besides image rewards: uptime rewards and automatic maintenance.

Uptime rewards run inside the worker's check-in on pop (``workers.check_in``), not in a
background sweep: a check-in already holds the worker's row and its new uptime, so deciding
costs a comparison, and writes happen only when an interval of uptime is crossed (about once
per 10 minutes per worker). Nothing runs when no worker pops, and each pop credits at most one
transaction.

Uptime (reference §3.3): every ``uptime_reward_interval_seconds`` of uptime earns 50 + 2 per
model (+30 with LoRA) kudos, recorded once per interval under ``uptime`` /
``{worker_id}:{interval_index}``; paused workers and workers in maintenance earn none.
Untrusted owners' uptime rewards go to escrow (``uptime_escrow_share``).

Automatic maintenance (reference §4.5) is decided where aborts are counted: ``count_abort``
counts aborted jobs (faults and expired leases) in a one-hour fixed window, and a worker that
passes ``worker_max_aborts_per_hour`` goes into maintenance in the same transaction, with a
message saying why, written to the audit log with the server as actor and kept as a worker suspicion
event (``TOO_MANY_JOBS_ABORTED``) for ``/operations/moderation/worker_suspicion_events``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from openhorde.config import Settings
from openhorde.domain import audit
from openhorde.domain.accounts import Account
from openhorde.domain.kudos import escrow, ledger
from openhorde.domain.kudos.ledger import DuplicateTransaction, Posting, SystemAccount, TransactionKind
from openhorde.domain.moderation import events as moderation_events
from openhorde.storage.repositories.workers import WorkerInfo
from openhorde.storage.store import Store

UPTIME_BASE_KUDOS = 50
UPTIME_KUDOS_PER_MODEL = 2
UPTIME_LORA_KUDOS = 30
ALCHEMIST_UPTIME_KUDOS = 15
"""An alchemist's reward per interval online (the AI Horde's interrogation workers)."""
ABORT_WINDOW_SECONDS = 3600
"""The automatic maintenance counts aborted jobs per hour, as the AI Horde does."""


def uptime_reward_cents(model_count: int, allow_lora: bool) -> int:
    """One interval's uptime reward in hundredths: 50 + 2 per model, +30 with LoRA (the AI Horde's image workers)."""
    kudos = UPTIME_BASE_KUDOS + UPTIME_KUDOS_PER_MODEL * model_count + (UPTIME_LORA_KUDOS if allow_lora else 0)
    return kudos * 100


def intervals_crossed(uptime_before: float, uptime_after: float, interval: int) -> tuple[int, int]:
    """``(index of the last interval completed, how many were completed)`` between two uptimes; (0, 0) if none."""
    if interval <= 0 or uptime_after <= uptime_before:
        return 0, 0
    before, after = int(uptime_before // interval), int(uptime_after // interval)
    return after, after - before


async def count_aborts(store: Store, worker_ids: Sequence[str], now: float) -> None:
    """Add one aborted job per appearance of a worker in ``worker_ids`` to its record and to its count in its
    current one-hour window (or a new one)."""
    await store.workers.count_aborts(Counter(worker_ids), now, ABORT_WINDOW_SECONDS)


async def after_check_in(
    store: Store, settings: Settings, worker: WorkerInfo, owner: Account, uptime_before: float, now: float
) -> None:
    """Credit the uptime interval the worker completed with this check-in, if any."""
    if worker.paused or worker.maintenance:
        return
    await _reward_uptime(store, settings, worker, owner, uptime_before, now)


async def enter_maintenance_if_aborting(
    store: Store, worker_ids: Sequence[str], limit: int | None, now: float
) -> list[str]:
    """Put into maintenance each of these workers that aborted more than ``limit`` jobs in its current window.

    Called right after ``count_abort`` counted the aborts, in the same transaction, so the switch is
    committed with them (a pop that is refused for maintenance rolls back, so it can't be done there).
    Returns the ids switched.
    """
    if limit is None or not worker_ids:
        return []
    switched = []
    for worker_id, aborts in await store.workers.aborting(worker_ids, limit, now, ABORT_WINDOW_SECONDS):
        message = (
            f"Automatic maintenance: this worker aborted {aborts} jobs within an hour (more than {limit}). "
            "Check its logs, then take it out of maintenance."
        )
        # The count starts afresh, so the owner can take the worker out of maintenance once it is fixed.
        await store.workers.enter_maintenance(worker_id, message)
        await audit.record(
            store,
            None,
            "worker.auto_maintenance",
            "worker",
            worker_id,
            {"aborted_jobs": aborts, "limit": limit, "window_seconds": ABORT_WINDOW_SECONDS},
            now=now,
        )
        worker = await store.workers.get(worker_id)  # rare: once per switch, for the evidence's name and owner
        if worker is not None:
            await moderation_events.record_worker_suspicion(
                store,
                worker_id,
                worker.name,
                worker.user_id,
                moderation_events.Suspicion.TOO_MANY_JOBS_ABORTED,
                f"Aborted {aborts} jobs within an hour (more than {limit}); put into maintenance.",
                now,
            )
        switched.append(worker_id)
    return switched


async def _reward_uptime(
    store: Store, settings: Settings, worker: WorkerInfo, owner: Account, uptime_before: float, now: float
) -> None:
    index, count = intervals_crossed(
        uptime_before, worker.uptime_seconds, settings.economy.uptime_reward_interval_seconds
    )
    if not count:
        return
    if worker.worker_type == "interrogation":
        amount = ALCHEMIST_UPTIME_KUDOS * 100 * count
    else:
        amount = uptime_reward_cents(len(worker.capabilities.models), worker.capabilities.allow_lora) * count
    try:
        # A savepoint: a concurrent pop of the same worker that credited this interval first undoes the
        # escrow bookkeeping too, not just the ledger insert.
        async with store.savepoint():
            postings = await escrow.owner_reward(
                store, settings, owner.id, amount, settings.economy.uptime_escrow_share, images=0, now=now
            )
            await ledger.record(
                store,
                TransactionKind.UPTIME,
                f"{worker.id}:{index}",
                [Posting(SystemAccount.MINT, -amount), *postings],
                memo=f"uptime of worker {worker.name}",
                now=now,
            )
    except DuplicateTransaction:
        return
    await store.workers.add_uptime_reward(worker.id, amount)
