"""``/audit``: the log of moderator and admin actions (an OpenHorde extension; moderators only)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from openhorde.api.deps import ApiUser, StoreDep
from openhorde.api.schemas.audit import AuditEntryOut, AuditPageOut
from openhorde.domain import audit

router = APIRouter(prefix="/audit", tags=["moderation"])


@router.get("", response_model=AuditPageOut, summary="Moderator and admin actions, newest first (OpenHorde)")
async def audit_log(store: StoreDep, user: ApiUser, page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> AuditPageOut:
    found = await audit.list_entries(store, user, page)
    return AuditPageOut(
        entries=[AuditEntryOut(**asdict(entry)) for entry in found.items],
        page=found.page,
        pages=found.pages,
        total=found.total,
    )
