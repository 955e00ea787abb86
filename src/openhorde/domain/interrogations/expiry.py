"""The maintenance pass's alchemy duties: leases that ran out, and interrogations past their time.

Called from ``domain/queue/leases.run_maintenance`` in the same transaction as the image duties (and under the
same lock on PostgreSQL). Each step is a conditional update or a delete of what is still there, so overlapping
passes do no harm.
"""

from __future__ import annotations

from dataclasses import dataclass

from openhorde.domain.context import HordeContext
from openhorde.domain.interrogations.forms import (
    MAX_FORM_ABORTS,
    FormState,
    form_transition,
    result_key,
    upload_key,
)
from openhorde.storage.store import Store

SWEEP_BATCH = 500


@dataclass(frozen=True)
class ExpiredForms:
    """Forms whose lease ran out, taken back: how many, and the workers that held them (once per form)."""

    count: int
    worker_ids: list[str]


async def expire_form_leases(store: Store, now: float) -> ExpiredForms:
    """Put forms whose lease ran out back in the queue (or fault them after too many aborts)."""
    ids = await store.interrogations.past_deadline(now, SWEEP_BATCH)
    aborted = await store.interrogations.abort(
        form_transition(FormState.WAITING), form_transition(FormState.FAULTED), ids, MAX_FORM_ABORTS, now
    )
    return ExpiredForms(len(aborted), [form.worker_id for form in aborted if form.worker_id is not None])


async def remove_old_interrogations(store: Store, ctx: HordeContext, now: float) -> int:
    """Delete interrogations past their expiry, with their forms, source image and post-processed images."""
    ended = await store.interrogations.ended_before(now, SWEEP_BATCH)
    if not ended:
        return 0
    ids = [interrogation_id for interrogation_id, _ in ended]
    keys = [source for _, source in ended if source]
    for form_id, _ in await store.interrogations.forms_named(ids):
        keys += [upload_key(form_id), result_key(form_id)]
    await store.interrogations.delete(ids)
    await ctx.blobs.delete_many(keys)
    return len(ids)
