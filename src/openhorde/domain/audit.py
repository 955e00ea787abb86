"""The audit log: each moderator or admin action is recorded in the same transaction as the action itself.

Call ``record`` from the domain function that performs a privileged change, never from a route, so an action
can't happen without its entry (and an entry can't exist for an action that was rolled back).
"""

from __future__ import annotations

import time
from typing import Any

from openhorde.domain.paging import Page, offset_of
from openhorde.errors import NotModerator
from openhorde.storage.repositories.accounts import Account
from openhorde.storage.repositories.audit import AuditRecord as AuditRecord  # the domain's name for it too
from openhorde.storage.store import Store

PAGE_SIZE = 50


async def record(
    store: Store,
    actor: Account | None,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
    now: float | None = None,
) -> None:
    """Write one entry; ``actor`` None means the server acted on its own."""
    actor_id = actor.id if actor is not None else None
    await store.audit.append(now or time.time(), actor_id, action, target_type, str(target_id), details or {})


async def list_entries(store: Store, viewer: Account, page: int) -> Page[AuditRecord]:
    """One page of the log, newest first; moderators and admins only."""
    if not (viewer.is_moderator or viewer.is_admin):
        raise NotModerator("Only moderators can read the audit log.")
    entries, total = await store.audit.page(offset_of(page, PAGE_SIZE), PAGE_SIZE)
    return Page.of(entries, page, total, PAGE_SIZE)
