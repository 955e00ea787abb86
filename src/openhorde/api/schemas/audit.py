"""Bodies of ``/audit`` (an OpenHorde extension)."""

from __future__ import annotations

from typing import Any

from openhorde.api.schemas.common import ResponseModel


class AuditEntryOut(ResponseModel):
    id: int
    created_at: float
    actor_id: int | None
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]


class AuditPageOut(ResponseModel):
    entries: list[AuditEntryOut]
    page: int
    pages: int
    total: int
