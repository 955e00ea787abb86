"""Named queries of the webhook outbox (``webhook_deliveries``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Request, WebhookDelivery

_NO_SYNC = {"synchronize_session": False}


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert one delivery; nothing happens when its ``event_key`` is already there (the event was recorded)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(WebhookDelivery).values(**values)
    await session.execute(statement.on_conflict_do_nothing(index_elements=[WebhookDelivery.event_key]))


_ENDED_WITH_WEBHOOK = select(
    Request.id,
    Request.state,
    Request.webhook,
    Request.n_finished,
    Request.n_faulted,
    Request.charged_cents,
    Request.fault_reason,
).where(
    Request.id.in_(bindparam("ids", expanding=True)),
    Request.state.in_(("done", "faulted")),
    Request.webhook.is_not(None),
)


async def ended_with_webhook(session: AsyncSession, request_ids: Sequence[str]) -> list[Any]:
    """Rows ``(id, state, webhook, n_finished, n_faulted, charged_cents, fault_reason)`` of those of these
    requests that have ended done or faulted and have a webhook."""
    return list(await session.execute(_ENDED_WITH_WEBHOOK, {"ids": list(request_ids)}))


_DUE = (
    select(WebhookDelivery.id)
    .where(
        WebhookDelivery.next_attempt_at <= bindparam("now"),
        (WebhookDelivery.claimed_until.is_(None)) | (WebhookDelivery.claimed_until < bindparam("now")),
    )
    .order_by(WebhookDelivery.next_attempt_at)
    .limit(bindparam("limit"))
)
_CLAIM = (
    update(WebhookDelivery)
    .where(
        WebhookDelivery.id.in_(bindparam("ids", expanding=True)),
        WebhookDelivery.next_attempt_at <= bindparam("now"),
        (WebhookDelivery.claimed_until.is_(None)) | (WebhookDelivery.claimed_until < bindparam("now")),
    )
    .values(claimed_until=bindparam("until"), claim_token=bindparam("token"))
    .execution_options(**_NO_SYNC)
)
_CLAIMED = select(WebhookDelivery.id, WebhookDelivery.url, WebhookDelivery.body, WebhookDelivery.attempts).where(
    WebhookDelivery.claim_token == bindparam("token"), WebhookDelivery.next_attempt_at.is_not(None)
)


async def claim_due(session: AsyncSession, now: float, until: float, token: str, limit: int) -> list[Any]:
    """Claim up to ``limit`` due deliveries for ``token`` until ``until``; rows ``(id, url, body, attempts)``.

    PostgreSQL skips rows another process has locked (``FOR UPDATE SKIP LOCKED``); on both engines the
    claim is a conditional update, so a row whose claim someone else took meanwhile is not claimed twice.
    """
    due = _DUE
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list((await session.execute(due, {"now": now, "limit": limit})).scalars())
    if not ids:
        return []
    await session.execute(_CLAIM, {"ids": ids, "now": now, "until": until, "token": token})
    return list(await session.execute(_CLAIMED, {"token": token}))


_OWN_CLAIM = (WebhookDelivery.id == bindparam("delivery_id")) & (WebhookDelivery.claim_token == bindparam("token"))
_FINISH = (
    update(WebhookDelivery)
    .where(_OWN_CLAIM)
    .values(
        attempts=WebhookDelivery.attempts + 1,
        next_attempt_at=bindparam("next_attempt_at"),
        delivered_at=bindparam("delivered_at"),
        failed_at=bindparam("failed_at"),
        last_error=bindparam("last_error"),
        claimed_until=None,
        claim_token=None,
    )
    .execution_options(**_NO_SYNC)
)


async def finish_attempt(
    session: AsyncSession,
    delivery_id: str,
    token: str,
    *,
    next_attempt_at: float | None,
    delivered_at: float | None,
    failed_at: float | None,
    last_error: str | None,
) -> bool:
    """Count one attempt and end the claim ``token`` holds on the row, in one statement; ``False`` when the
    claim was no longer ours (it ran out and another loop took the row)."""
    values = {
        "delivery_id": delivery_id,
        "token": token,
        "next_attempt_at": next_attempt_at,
        "delivered_at": delivered_at,
        "failed_at": failed_at,
        "last_error": last_error,
    }
    return bool(getattr(await session.execute(_FINISH, values), "rowcount", 0))


_PURGE = (
    delete(WebhookDelivery)
    .where(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.created_at < bindparam("before"))
    .execution_options(**_NO_SYNC)
)


async def purge_ended(session: AsyncSession, before: float) -> int:
    """Delete delivered or failed rows created before ``before``; returns how many."""
    return int(getattr(await session.execute(_PURGE, {"before": before}), "rowcount", 0))
