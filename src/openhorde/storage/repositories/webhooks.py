"""The webhook outbox (``webhook_deliveries``): events recorded once, then claimed, sent and settled.

* ``add`` writes an event in the transaction that makes it happen, under its unique key: a second ``add`` of
  the same key does nothing, however many processes notice the event.
* ``claim_due`` claims due rows for a token until a time: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and on
  both engines a conditional update, so a row another loop claimed meanwhile is not claimed twice.
* ``finish_attempt`` counts an attempt and ends the claim in one statement, only while the claim is the
  caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from openhorde.storage.tables import Request, WebhookDelivery

_OUTBOX = cast(Table, WebhookDelivery.__table__)
_REQUESTS = cast(Table, Request.__table__)


@dataclass(frozen=True, slots=True)
class EndedRequest:
    """A request that ended done or faulted and has a webhook: what its ``done``/``faulted`` event says."""

    id: str
    state: str
    webhook: str
    n_finished: int
    n_faulted: int
    charged_cents: int
    fault_reason: str | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """An outbox row claimed for sending."""

    id: str
    url: str
    body: str
    attempts: int
    """Attempts made before this one."""


def _add_statement(insert: Any) -> Any:
    values = {
        "id": bindparam("delivery_id"),
        "event_key": bindparam("key"),
        "request_id": bindparam("of_request"),
        "event": bindparam("kind"),
        "url": bindparam("to_url"),
        "body": bindparam("payload"),
        "created_at": bindparam("now"),
        "attempts": 0,
        "next_attempt_at": bindparam("now"),
    }
    return insert(_OUTBOX).values(values).on_conflict_do_nothing(index_elements=[_OUTBOX.c.event_key])


_ADD_POSTGRES = _add_statement(postgresql.insert)
_ADD_SQLITE = _add_statement(sqlite.insert)
_ENDED_WITH_WEBHOOK = select(
    _REQUESTS.c.id,
    _REQUESTS.c.state,
    _REQUESTS.c.webhook,
    _REQUESTS.c.n_finished,
    _REQUESTS.c.n_faulted,
    _REQUESTS.c.charged_cents,
    _REQUESTS.c.fault_reason,
).where(
    _REQUESTS.c.id.in_(bindparam("ids", expanding=True)),
    _REQUESTS.c.state.in_(("done", "faulted")),
    _REQUESTS.c.webhook.is_not(None),
)
_claimable = (_OUTBOX.c.next_attempt_at <= bindparam("now")) & (
    _OUTBOX.c.claimed_until.is_(None) | (_OUTBOX.c.claimed_until < bindparam("now"))
)
_DUE = select(_OUTBOX.c.id).where(_claimable).order_by(_OUTBOX.c.next_attempt_at).limit(bindparam("limit"))
_DUE_LOCKED = _DUE.with_for_update(skip_locked=True)
_CLAIM = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)), _claimable)
    .values(claimed_until=bindparam("until"), claim_token=bindparam("token"))
)
_CLAIMED = select(_OUTBOX.c.id, _OUTBOX.c.url, _OUTBOX.c.body, _OUTBOX.c.attempts).where(
    _OUTBOX.c.claim_token == bindparam("token"), _OUTBOX.c.next_attempt_at.is_not(None)
)
_FINISH = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("delivery_id"), _OUTBOX.c.claim_token == bindparam("token"))
    .values(
        attempts=_OUTBOX.c.attempts + 1,
        next_attempt_at=bindparam("next_at"),
        delivered_at=bindparam("delivered"),
        failed_at=bindparam("failed"),
        last_error=bindparam("error"),
        claimed_until=None,
        claim_token=None,
    )
    .returning(_OUTBOX.c.id)
)
_PURGE = delete(_OUTBOX).where(_OUTBOX.c.next_attempt_at.is_(None), _OUTBOX.c.created_at < bindparam("before"))


class WebhookRepository:
    """The webhook outbox, and the ended requests whose events go into it."""

    __slots__ = ("_postgres", "_session")

    def __init__(self, session: AsyncSession, is_sqlite: bool) -> None:
        self._session = session
        self._postgres = not is_sqlite

    async def add(
        self, delivery_id: str, key: str, request_id: str, event: str, url: str, body: str, now: float
    ) -> None:
        """Record one event for ``url``, due at ``now``; nothing happens when an event under ``key`` is already
        recorded."""
        values = {
            "delivery_id": delivery_id,
            "key": key,
            "of_request": request_id,
            "kind": event,
            "to_url": url,
            "payload": body,
            "now": now,
        }
        await self._session.execute(_ADD_POSTGRES if self._postgres else _ADD_SQLITE, values)

    async def ended_with_webhook(self, request_ids: Sequence[str]) -> list[EndedRequest]:
        """Those of these requests that have ended done or faulted and have a webhook."""
        rows = await self._session.execute(_ENDED_WITH_WEBHOOK, {"ids": list(request_ids)})
        return [EndedRequest(*row) for row in rows]

    async def claim_due(self, now: float, until: float, token: str, limit: int) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` deliveries due at ``now`` for ``token`` until ``until``.

        PostgreSQL skips rows another process has locked (``FOR UPDATE SKIP LOCKED``); on both engines the
        claim is a conditional update, so a row whose claim someone else took meanwhile is not claimed twice.
        """
        due = _DUE_LOCKED if self._postgres else _DUE
        ids = list((await self._session.execute(due, {"now": now, "limit": limit})).scalars())
        if not ids:
            return []
        await self._session.execute(_CLAIM, {"ids": ids, "now": now, "until": until, "token": token})
        return [ClaimedDelivery(*row) for row in await self._session.execute(_CLAIMED, {"token": token})]

    async def finish_attempt(
        self,
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
            "next_at": next_attempt_at,
            "delivered": delivered_at,
            "failed": failed_at,
            "error": last_error,
        }
        return (await self._session.execute(_FINISH, values)).first() is not None

    async def purge_ended(self, before: float) -> int:
        """Delete delivered or failed rows created before ``before``; returns how many."""
        result = await self._session.execute(_PURGE, {"before": before})
        return int(getattr(result, "rowcount", 0))
