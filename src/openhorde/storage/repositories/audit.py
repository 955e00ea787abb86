"""The audit repository: the log of privileged actions, appended in the transaction of the action itself."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import AuditEntry

_AUDIT = cast(Table, AuditEntry.__table__)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry as moderators see it."""

    id: int
    created_at: float
    actor_id: int | None
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]


_RECORD_COLUMNS = [_AUDIT.c[field.name] for field in fields(AuditRecord)]
_COUNT = select(func.count()).select_from(_AUDIT)
# The page and the total in one statement; the total comes with every row, so a page past the end reads it alone.
_PAGE = (
    select(*_RECORD_COLUMNS, _COUNT.scalar_subquery().label("total"))
    .order_by(_AUDIT.c.created_at.desc(), _AUDIT.c.id.desc())
    .offset(bindparam("skip"))
    .limit(bindparam("take"))
)
_APPEND = insert(_AUDIT).values(
    created_at=bindparam("at"),
    actor_id=bindparam("actor"),
    action=bindparam("what"),
    target_type=bindparam("kind"),
    target_id=bindparam("target"),
    details=bindparam("about"),
)


class AuditRepository:
    """Every statement about ``audit_log``."""

    __slots__ = ("_session",)

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def append(
        self, now: float, actor_id: int | None, action: str, target_type: str, target_id: str, details: dict[str, Any]
    ) -> None:
        """Append one entry."""
        values = {
            "at": now,
            "actor": actor_id,
            "what": action,
            "kind": target_type,
            "target": target_id,
            "about": details,
        }
        await self._session.execute(_APPEND, values)

    async def page(self, offset: int, limit: int) -> tuple[list[AuditRecord], int]:
        """Entries, newest first, and how many there are in all."""
        rows = (await self._session.execute(_PAGE, {"skip": offset, "take": limit})).all()
        if not rows:
            total = int((await self._session.execute(_COUNT)).scalar_one()) if offset else 0
            return [], total
        records = [
            AuditRecord(
                id=row.id,
                created_at=row.created_at,
                actor_id=row.actor_id,
                action=row.action,
                target_type=row.target_type,
                target_id=row.target_id,
                details=dict(row.details or {}),
            )
            for row in rows
        ]
        return records, int(rows[0].total)
