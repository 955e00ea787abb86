"""The audit log: each moderator or admin action is recorded in the same transaction as the action itself.

Call ``record`` from the domain function that performs a privileged change, never from a route, so an action
can't happen without its entry (and an entry can't exist for an action that was rolled back).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.domain.paging import Page, offset_of
from openhorde.errors import NotModerator
from openhorde.storage import audit_queries
from openhorde.storage.tables import User

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditRecord:
    """One entry as moderators see it."""

    id: int
    created_at: float
    actor_id: int | None
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]


async def record(
    session: AsyncSession,
    actor: User | None,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
    now: float | None = None,
) -> None:
    """Write one entry; ``actor`` None means the server acted on its own."""
    await audit_queries.insert_entry(
        session,
        {
            "created_at": now or time.time(),
            "actor_id": actor.id if actor is not None else None,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "details": details or {},
        },
    )


async def list_entries(session: AsyncSession, viewer: User, page: int) -> Page[AuditRecord]:
    """One page of the log, newest first; moderators and admins only."""
    if not (viewer.is_moderator or viewer.is_admin):
        raise NotModerator("Only moderators can read the audit log.")
    total = await audit_queries.count(session)
    rows = await audit_queries.page_of(session, offset_of(page, PAGE_SIZE), PAGE_SIZE)
    entries = [
        AuditRecord(r.id, r.created_at, r.actor_id, r.action, r.target_type, r.target_id, dict(r.details or {}))
        for r in rows
    ]
    return Page.of(entries, page, total, PAGE_SIZE)
